"""Tests of the shipped artifact (docker/, k8s/): a package, so that its conftest
and helpers do not collide with tests/e2e's when both run in one session."""
