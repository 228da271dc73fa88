"""No password through any error path (README: "secrets").

Passwords of every length (1 to 3 bytes included) and with the characters
URLs get wrong (@ : / % + # and spaces), percent-encoded and not, given as
DATABASE_URL, as DATABASE_URL_FILE and as registry url-env variables (more
than sixteen of them), run through every error path: the URL does not parse,
the server is unreachable, authentication fails, TLS fails, a migration
fails with a message that echoes a value. Nothing of a password may appear
in stdout, stderr, the termination message, or any document we write
(history, lock, state).

What counts as "something of a password": the password as written in the
URL, percent-decoded, percent-encoded, and for a password with '@' in it
every prefix up to an '@' (libmongoc ends the userinfo at the first '@').
A password of 1 to 3 bytes cannot be blanked wherever its bytes occur (a
bare "ab" would blank every "ab" in every line): it is redacted as part of
the URL and never echoed out of it, which is what these tests check, with
passwords made of bytes that nothing else prints.
"""

import json
import os
import subprocess
from pathlib import Path
from urllib.parse import quote, unquote

import pytest
import yaml

from conftest import (
    AUTH_DB,
    MI_BIN,
    free_port,
    run_mi,
    write_migrations,
)

USER = "migrator"
# Short ones (in bytes) are made of bytes nothing else prints (~ |), with
# the characters URLs get wrong.
SHORT = ["~", "|@", "~:/", "|%~", "+ |", "#~", "|:"]
LONG = ["hunter2:xyz@abc", "Pa ss/w@rd#1+Q", "p%40ss%3Aw0rdZ", "ünï©ødé-S3cret", "a@b@c@d@e§"]
PASSWORDS = SHORT + LONG
MIGRATIONS = {"1_one.up.json": [{"insert": "t", "documents": [{"_id": 1}]}]}


def forbidden(pw):
    """The byte strings that must not be seen for password pw."""
    forms = {pw, quote(pw, safe=""), quote(pw, safe="@:/+ "), unquote(pw)}
    for i, ch in enumerate(pw):
        if ch == "@" and i > 0:
            forms.add(pw[:i])
    return {f for f in forms if f and (len(f) >= 4 or f in (pw, quote(pw, safe="")))}


def ids(pws):
    return [f"{len(p)}:{quote(p, safe='')}" for p in pws]


def url(pw, port, db, raw=False, query="authMechanism=PLAIN"):
    secret = pw if raw else quote(pw, safe="")
    return f"mongodb://{USER}:{secret}@127.0.0.1:{port}/{db}?{query}"


def everything(res, term, db=None):
    """All that a run left for anyone to read."""
    out = [res.stdout, res.stderr]
    if term.exists():
        out.append(term.read_bytes().decode("utf-8", "replace"))
    if db is not None:
        for name in db.list_collection_names():
            for doc in db[name].find():
                out.append(json.dumps(doc, default=str, ensure_ascii=False))
    return "\n".join(out)


def assert_no_secret(pws, text, res):
    for pw in pws:
        for form in forbidden(pw):
            assert form not in text, f"{form!r} (of password {pw!r}) leaked:\n{res!r}\n{text}"


def run(tmp_path, env, args=("up",)):
    term = tmp_path / "termination-log"
    if term.exists():
        term.unlink()
    d = write_migrations(tmp_path / "m", MIGRATIONS)
    env = {"TERMINATION_MESSAGE_PATH": str(term), "MAX_RETRIES": "1", "MIGRATION_DIR": str(d), **env}
    return run_mi(list(args), env=env, timeout=60), term


# --------------------------------------------------------------------------
# Each error path, for every password, through DATABASE_URL and DATABASE_URL_FILE


@pytest.mark.parametrize("via", ["DATABASE_URL", "DATABASE_URL_FILE"])
@pytest.mark.parametrize("pw", PASSWORDS, ids=ids(PASSWORDS))
def test_unparsable_or_unreachable(pw, via, tmp_path):
    """Written raw (unescaped) the URL may not parse (2); encoded, nobody
    listens on the port (4). Either way: not a byte of the password."""
    port = free_port()
    for raw in (True, False):
        u = url(pw, port, "db", raw=raw, query="authMechanism=PLAIN&connectTimeoutMS=300")
        if via == "DATABASE_URL":
            env = {"DATABASE_URL": u}
        else:
            f = tmp_path / "url"
            f.write_text(u + "\n")
            env = {"DATABASE_URL_FILE": str(f)}
        res, term = run(tmp_path, env)
        assert res.returncode in (2, 4), res
        if not raw:
            assert res.returncode == 4, res
        assert_no_secret([pw], everything(res, term), res)


@pytest.mark.parametrize("pw", PASSWORDS, ids=ids(PASSWORDS))
def test_authentication_failure(pw, ferretdb_auth, tmp_path):
    u = ferretdb_auth.url("db", password=pw)
    res, term = run(tmp_path, {"DATABASE_URL": u})
    assert res.returncode == 5, res
    assert_no_secret([pw], everything(res, term), res)


@pytest.mark.parametrize("pw", PASSWORDS, ids=ids(PASSWORDS))
def test_tls_failure(pw, ferretdb_tls, tmp_path):
    q = f"tls=true&tlsCAFile={ferretdb_tls.certs.other_ca}&authMechanism=PLAIN"
    res, term = run(tmp_path, {"DATABASE_URL": url(pw, ferretdb_tls.tls_port, "db", query=q)})
    assert res.returncode == 5, res
    assert_no_secret([pw], everything(res, term), res)


@pytest.mark.parametrize("pw", LONG, ids=ids(LONG))
def test_migration_failure_echoing_the_password(pw, ferretdb, mongo, dbname, tmp_path):
    """A migration fails on a duplicate key that is the password: the server's
    message echoes it into our log, the termination message and the history."""
    d = write_migrations(tmp_path / "m2", {
        "1_dup.up.json": [{"insert": "t", "documents": [{"_id": pw}]},
                          {"insert": "t", "documents": [{"_id": pw}]}]})
    term = tmp_path / "termination-log"
    res = run_mi(["up"], env={"DATABASE_URL": url(pw, ferretdb, dbname), "MIGRATION_DIR": str(d),
                              "TERMINATION_MESSAGE_PATH": str(term)})
    assert res.returncode == 7, res
    db = mongo[dbname]
    assert db["schema_migrations_history"].count_documents({"outcome": "failed"}) == 1
    everything_but_the_data = everything(res, term, None) + "\n" + "\n".join(
        json.dumps(doc, default=str, ensure_ascii=False)
        for name in ("schema_migrations", "schema_migrations_history", "migrate_advisory_lock")
        for doc in db[name].find())
    assert_no_secret([pw], everything_but_the_data, res)


# --------------------------------------------------------------------------
# Registry url-env: more URLs than any fixed table would hold


def test_twenty_registry_urls_none_leaks(ferretdb, mongo, new_db, tmp_path):
    """Nineteen dependencies are met (their URLs, each with its own password,
    reach databases at the needed version); the twentieth URL does not parse
    and its password (raw, with an '@') would be echoed by the driver."""
    d = write_migrations(tmp_path / "svc", {"1_a.up.json": [{"insert": "t", "documents": [{"_id": 1}]}]})
    deps, env, pws = [], {}, []
    for i in range(20):
        pw = f"dep{i:02d}-pa55§word" if i < 19 else "la:st@dep§pw"
        pws.append(pw)
        name, _, db = new_db()
        db["schema_migrations"].insert_one({"version": 5, "dirty": False})
        var = f"DEP_{i}_DATABASE_URL"
        env[var] = url(pw, ferretdb, name, raw=i == 19)
        deps.append({"service": f"svc-{i}", "min-version": 5, "url-env": var})
    (d / ".migration-registry.yaml").write_text(yaml.safe_dump(
        {"service": "svc", "database": "svc", "migrations": [{"version": 1, "dependencies": deps}]}))
    name, db_url, db = new_db()
    term = tmp_path / "termination-log"
    res = run_mi(["up"], env={**env, "DATABASE_URL": db_url, "MIGRATION_DIR": str(d),
                              "DEPENDENCY_TIMEOUT": "1s", "TERMINATION_MESSAGE_PATH": str(term)})
    assert res.returncode == 11, res
    assert "svc-19" in res.stderr, res
    assert_no_secret(pws, everything(res, term, db), res)


# --------------------------------------------------------------------------
# The exact case of the issue, and the driver's message


def test_password_with_colon_and_two_at_signs(tmp_path):
    res, term = run(tmp_path, {"DATABASE_URL": "mongodb://migrator:hunter2:xyz@abc@127.0.0.1:1/db"})
    assert res.returncode == 2, res
    assert "invalid database URL" in res.stderr and "unescaped" in res.stderr, res
    text = everything(res, term)
    for leak in ("hunter2", "xyz@abc", "2:xyz"):
        assert leak not in text, text
