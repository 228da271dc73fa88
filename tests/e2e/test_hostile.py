"""Hostile input, end to end: every bad value a deploy can carry.

Each row of the table is one bad input (environment value, flag, command
argument, database URL, or migration file) run against the session FerretDB
with a database URL that carries the canary password. Each must end with:
  * its documented exit code (2 configuration/usage, 3 migration source);
  * a message that says what is wrong (a key phrase, asserted);
  * the database untouched: not one collection created (no state, no lock,
    no history), the database not even created;
  * no output, and no termination message, containing the canary password
    (checked for every run of this file; run_mi checks its own too);
  * every stderr line a JSON object (run_mi), and a bounded time.

"Unreadable" migration files: the tests run as root, and root reads a
chmod 000 file anyway, so a mode change proves nothing here. Used instead,
each named like a migration: a FIFO (open must not block and the read must
not hang), a dangling symlink (ENOENT), a symlink loop (ELOOP). A directory
named like a migration is not an error at all: golang-migrate skips
directories, and so does migrate-init (a row checks that such a directory
alone means "no migrations").

A name with spaces (`1_my name.up.json`) is a valid golang-migrate name:
not in the table, a separate test checks both tools apply it alike.
"""

import os
import random
import re
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import pytest

from conftest import (
    settled,
    CANARY_PASSWORD,
    MI_BIN,
    Result,
    check_mi_output,
    clean_env,
    run_gm,
    run_mi,
    version_of,
    write_migrations,
)

HANG = 30  # seconds: a run that takes longer is hung
USER = "migrator"

OUTPUTS = []  # every run's output in this file, for the canary check


# --------------------------------------------------------------------------
# The table


class Ctx:
    """What a row can use to build its run: the port, the test's database
    name, a good URL (with the canary password), the migrations directory
    (a valid set unless the row adds bad files) and a scratch directory."""

    def __init__(self, port, dbname, migdir, scratch):
        self.port, self.dbname, self.migdir, self.scratch = port, dbname, migdir, scratch

    def url(self, db=None, query="", password=CANARY_PASSWORD):
        db = self.dbname if db is None else db
        q = "?authMechanism=PLAIN" + (("&" + query) if query else "")
        return f"mongodb://{USER}:{quote(password, safe='')}@127.0.0.1:{self.port}/{db}{q}"


class Row:
    def __init__(self, id, code, phrases, env=None, args=None, url=None, files=None, setup=None,
                 cmd=("up",), limit_as=None, no_url=False):
        self.id, self.code = id, code
        self.phrases = [phrases] if isinstance(phrases, str) else list(phrases)
        self.env = env or {}
        self.args = args  # None: ["-path", migdir] + cmd; else a function ctx -> argv
        self.url = url  # a function ctx -> DATABASE_URL (default: ctx.url())
        self.files = files or {}  # extra migration files {name: str | bytes}
        self.setup = setup  # ctx -> extra env (may create files)
        self.cmd = list(cmd)
        self.limit_as = limit_as  # RLIMIT_AS in bytes, for inputs that may eat memory
        self.no_url = no_url


def env_rows():
    bad = {
        "MAX_RETRIES": ["abc", "-1", "0", "99999999999999999999999", " 3", "1000001", "3.5"],
        "RETRY_INTERVAL": ["fast", "-1s", "0", "1e3", "0x10", "2 s"],
        "RETRY_MAX_INTERVAL": ["10x", "ms", "-10s"],
        "WAIT_TIMEOUT": [" ", "99999999999999h", "-5s", "1d"],
        "LOCK_TIMEOUT": ["soon", "1.5.5s", "-1", "\t"],
        "LOCK_LEASE": ["0", "NaN", "-30s", "10000000000000000000s"],
        "LOCK_STALE_AFTER": ["forever", "-1", "10 m"],
        "STOP_GRACE_PERIOD": ["20 s", "inf", "-20s"],
        "DEPENDENCY_TIMEOUT": ["5min", "18446744073709551616", "-5m"],
        "TARGET_VERSION": ["abc", "-1", "18446744073709551616", "1.0", " 1", "0x10"],
        "ALLOW_BREAKING": ["yes", "2", "on", "TRUE!"],
        "LOG_FORMAT": ["xml", "JSONL", " "],
        "LOG_LEVEL": ["verbose", "trace", "0", " "],
    }
    rows = []
    for var, values in bad.items():
        for i, v in enumerate(values):
            phrases = ["invalid configuration value", f'"variable":"{var}"']
            # TARGET_VERSION matters in entrypoint mode (no command).
            cmd = () if var == "TARGET_VERSION" else ("up",)
            rows.append(Row(f"env-{var}-{i}", 2, phrases, env={var: v}, cmd=cmd))
    rows += [
        Row("env-LOCK_LEASE-below-300ms", 2, ["LOCK_LEASE", "at least 300ms"],
            env={"LOCK_LEASE": "299ms"}),
        Row("env-LOCK_LEASE-100ms", 2, ["LOCK_LEASE", "at least 300ms"], env={"LOCK_LEASE": "100ms"}),
        Row("env-TARGET_VERSION-above-int64", 2, ['"variable":"TARGET_VERSION"', "too large"],
            env={"TARGET_VERSION": "9223372036854775808"}, cmd=()),
        Row("env-no-url", 2, "no database URL", no_url=True),
        Row("env-url-and-url-file", 2, "both set",
            setup=lambda c: {"DATABASE_URL_FILE": write(c.scratch / "url", c.url())}),
        Row("env-url-file-missing", 2, ["DATABASE_URL_FILE", "No such file"], no_url=True,
            setup=lambda c: {"DATABASE_URL_FILE": str(c.scratch / "nope")}),
        Row("env-url-file-with-NUL", 2, ["DATABASE_URL_FILE", "NUL"], no_url=True,
            setup=lambda c: {"DATABASE_URL_FILE": write(c.scratch / "url",
                                                        c.url().encode() + b"\0junk")}),
        Row("env-url-file-huge", 2, ["DATABASE_URL_FILE", "64 KiB"], no_url=True,
            setup=lambda c: {"DATABASE_URL_FILE": write(c.scratch / "url",
                                                        c.url() + "&" + "a" * 70000)}),
        Row("env-url-file-empty", 2, ["DATABASE_URL_FILE", "empty"], no_url=True,
            setup=lambda c: {"DATABASE_URL_FILE": write(c.scratch / "url", "\n")}),
    ]
    return rows


def write(path, data):
    path = Path(path)
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data)
    return str(path)


def mkdir(path):
    Path(path).mkdir(parents=True, exist_ok=True)
    return str(path)


def a(*argv):
    """argv builder: "{dir}" is the migrations directory."""
    return lambda c: [str(c.migdir) if x == "{dir}" else x for x in argv]


def flag_rows():
    P = "-path"
    return [
        Row("flag-unknown", 2, ["flag provided but not defined", "-bogus"], args=a("-bogus", P, "{dir}", "up")),
        Row("flag-unknown-double-dash", 2, "flag provided but not defined",
            args=a("--no-such-flag=1", P, "{dir}", "up")),
        Row("flag-database-missing-value", 2, ["flag needs an argument", "-database"],
            args=a(P, "{dir}", "-database")),
        Row("flag-path-missing-value", 2, ["flag needs an argument", "-path"], args=a("-path")),
        Row("flag-lock-timeout-garbage", 2, ["-lock-timeout", "whole number"],
            args=a("-lock-timeout", "abc", P, "{dir}", "up")),
        Row("flag-lock-timeout-negative", 2, "-lock-timeout",
            args=a("-lock-timeout", "-5", P, "{dir}", "up")),
        Row("flag-lock-timeout-huge", 2, "-lock-timeout",
            args=a("-lock-timeout=99999999999", P, "{dir}", "up")),
        Row("flag-lock-timeout-fraction", 2, "-lock-timeout",
            args=a("-lock-timeout", "1.5", P, "{dir}", "up")),
        Row("flag-lock-timeout-empty", 2, "-lock-timeout",
            args=a("-lock-timeout=", P, "{dir}", "up")),
        Row("flag-prefetch-garbage", 2, ["-prefetch", "whole number"],
            args=a("-prefetch", "x", P, "{dir}", "up")),
        Row("flag-prefetch-negative", 2, "-prefetch", args=a("-prefetch=-1", P, "{dir}", "up")),
        Row("flag-bool-with-garbage", 2, "invalid boolean value",
            args=a("-verbose=maybe", P, "{dir}", "up")),
        Row("flag-triple-dash", 2, "bad flag syntax", args=a("---path", "{dir}", "up")),
        Row("flag-dash-equals", 2, "bad flag syntax", args=a("-=x", P, "{dir}", "up")),
        Row("flag-source-http", 2, ["-source", "file://"],
            args=a("-source", "http://example.invalid/m", "up")),
        # file:// alone is the working directory (golang-migrate's rule): here one
        # with no migrations in it.
        Row("flag-source-no-dir", 3, ["no migrations found", '"dir":"."'], args=a("-source", "file://", "up")),
        Row("flag-source-bad-escape", 2, ["-source", "percent-encoding"], args=a("-source", "file:///m%zz", "up")),
        Row("cmd-unknown", 2, ["unknown command", "migrate"], args=a(P, "{dir}", "migrate")),
        Row("cmd-uppercase", 2, ["unknown command", "UP"], args=a(P, "{dir}", "UP")),
        Row("cmd-up-x", 2, "up: can't read limit argument N", args=a(P, "{dir}", "up", "x")),
        Row("cmd-up-negative", 2, "up: can't read limit argument N", args=a(P, "{dir}", "up", "-1")),
        Row("cmd-up-two-args", 2, "up: too many arguments", args=a(P, "{dir}", "up", "1", "2")),
        Row("cmd-up-unknown-flag", 2, "flag provided but not defined",
            args=a(P, "{dir}", "up", "-all")),
        Row("cmd-goto-negative", 2, "goto: can't read version argument V",
            args=a(P, "{dir}", "goto", "-3")),
        Row("cmd-goto-missing", 2, "goto: please specify version argument V",
            args=a(P, "{dir}", "goto")),
        Row("cmd-goto-huge", 2, "goto: can't read version argument V",
            args=a(P, "{dir}", "goto", "99999999999999999999")),
        Row("cmd-goto-two-args", 2, "goto: too many arguments", args=a(P, "{dir}", "goto", "1", "2")),
        Row("cmd-force-minus-2", 2, "force: argument V must be >= -1",
            args=a(P, "{dir}", "force", "-2")),
        Row("cmd-force-garbage", 2, "force: can't read version argument V",
            args=a(P, "{dir}", "force", "v1")),
        Row("cmd-force-missing", 2, "force: please specify version argument V",
            args=a(P, "{dir}", "force")),
        Row("cmd-force-two-args", 2, "force: too many arguments", args=a(P, "{dir}", "force", "1", "2")),
        Row("cmd-down-two-args", 2, "down: too many arguments", args=a(P, "{dir}", "down", "1", "2")),
        Row("cmd-down-all-with-n", 2, "down: -all cannot be used with other arguments",
            args=a(P, "{dir}", "down", "-all", "3")),
        Row("cmd-down-garbage", 2, "down: can't read limit argument N", args=a(P, "{dir}", "down", "x")),
        Row("cmd-down-no-terminal", 2, "refusing to apply all down migrations",
            args=a(P, "{dir}", "down")),
        Row("cmd-drop-no-terminal", 2, "refusing to drop", args=a(P, "{dir}", "drop")),
        Row("cmd-drop-f-garbage", 2, "invalid boolean value", args=a(P, "{dir}", "drop", "-f=maybe")),
    ]


def url_rows():
    pw = quote(CANARY_PASSWORD, safe="")
    scheme = "unsupported database URL scheme"
    return [
        Row("url-postgres", 2, [scheme, "postgres"],
            url=lambda c: f"postgres://{USER}:{pw}@127.0.0.1:5432/{c.dbname}?sslmode=disable"),
        Row("url-mysql", 2, [scheme, "mysql"],
            url=lambda c: f"mysql://{USER}:{pw}@tcp(127.0.0.1:3306)/{c.dbname}"),
        Row("url-http", 2, [scheme, "http"], url=lambda c: f"http://127.0.0.1:{c.port}/{c.dbname}"),
        Row("url-no-scheme", 2, scheme, url=lambda c: f"{USER}:{pw}@127.0.0.1:{c.port}/{c.dbname}"),
        Row("url-uppercase-scheme", 2, scheme, url=lambda c: f"MONGODB://127.0.0.1:{c.port}/{c.dbname}"),
        Row("url-no-host", 2, "invalid database URL", url=lambda c: f"mongodb:///{c.dbname}"),
        Row("url-no-database", 2, "no database name",
            url=lambda c: f"mongodb://{USER}:{pw}@127.0.0.1:{c.port}"),
        Row("url-no-database-slash", 2, "no database name",
            url=lambda c: f"mongodb://{USER}:{pw}@127.0.0.1:{c.port}/"),
        Row("url-no-database-with-options", 2, "no database name",
            url=lambda c: f"mongodb://127.0.0.1:{c.port}/?x-migrations-collection=m"),
        Row("url-port-too-big", 2, "invalid database URL",
            url=lambda c: f"mongodb://{USER}:{pw}@127.0.0.1:99999/{c.dbname}"),
        Row("url-port-not-a-number", 2, "invalid database URL",
            url=lambda c: f"mongodb://127.0.0.1:abc/{c.dbname}"),
        Row("url-unknown-option", 2, ["unknown option", "bogusOption"],
            url=lambda c: c.url(query="bogusOption=1")),
        Row("url-bad-tls-value", 2, "invalid database URL", url=lambda c: c.url(query="tls=maybe")),
        Row("url-srv-with-port", 2, "invalid database URL",
            url=lambda c: f"mongodb+srv://127.0.0.1:{c.port}/{c.dbname}"),
        Row("url-x-advisory-locking-maybe", 2, ["x-advisory-locking", "boolean"],
            url=lambda c: c.url(query="x-advisory-locking=maybe")),
        Row("url-x-transaction-mode-2", 2, ["x-transaction-mode", "boolean"],
            url=lambda c: c.url(query="x-transaction-mode=2")),
        Row("url-x-history-perhaps", 2, ["x-history", "boolean"],
            url=lambda c: c.url(query="x-history=perhaps")),
        Row("url-x-lock-timeout-garbage", 2, ["x-advisory-lock-timeout", "whole number"],
            url=lambda c: c.url(query="x-advisory-lock-timeout=soon")),
        Row("url-x-lock-timeout-overflow", 2, "x-advisory-lock-timeout",
            url=lambda c: c.url(query="x-advisory-lock-timeout=99999999999999999999")),
        Row("url-x-lock-interval-garbage", 2, ["x-advisory-lock-timeout-interval", "whole number"],
            url=lambda c: c.url(query="x-advisory-lock-timeout-interval=abc")),
        Row("url-x-lock-interval-both-spellings", 2,
            ["x-advisory-lock-timeout-interval and x-advisory-lock-timout-interval"],
            url=lambda c: c.url(query="x-advisory-lock-timeout-interval=1&"
                                      "x-advisory-lock-timout-interval=2")),
        Row("url-x-option-bad-percent", 2, ["x-migrations-collection", "percent-encoding"],
            url=lambda c: c.url(query="x-migrations-collection=%zz")),
        Row("url-x-option-truncated-percent", 2, "percent-encoding",
            url=lambda c: c.url(query="x-advisory-lock-collection=lock%4")),
        Row("url-userinfo-bad-percent", 2, "invalid database URL",
            url=lambda c: f"mongodb://{USER}:{pw}%zz@127.0.0.1:{c.port}/{c.dbname}"),
        Row("url-empty-means-none", 2, "no database URL", url=lambda c: ""),
        # A TLS file nobody can read: no retry fixes that (5 at once, naming
        # the option, not 30 attempts and 4).
        Row("url-tls-ca-file-missing", 5, ["tlsCAFile", "cannot read the file", "/nonexistent/ca.pem"],
            url=lambda c: c.url(query="tls=true&tlsCAFile=/nonexistent/ca.pem"),
            env={"MAX_RETRIES": "30"}),
        Row("url-tls-cert-key-file-missing", 5, ["tlsCertificateKeyFile", "cannot read the file"],
            url=lambda c: c.url(query="tls=true&tlsCertificateKeyFile=/nonexistent/client.pem"),
            env={"MAX_RETRIES": "30"}),
        Row("url-tls-ca-file-unreadable", 5, ["tlsCAFile", "cannot read the file"],
            url=lambda c: c.url(query=f"tls=true&tlsCAFile={c.scratch}"),
            env={"MAX_RETRIES": "30"}),
        # The driver's message quotes the password it choked on: never raw.
        Row("url-password-unescaped-colon", 2, ["invalid database URL", "unescaped"],
            url=lambda c: f"mongodb://{USER}:{CANARY_PASSWORD}:x@127.0.0.1:{c.port}/{c.dbname}"),
    ]


def deep_json(n):
    return "[{\"insert\": \"a\", \"documents\": [{\"x\": " + "[" * n + "]" * n + "}]}]"


def alias_bomb(levels):
    """A few hundred bytes of YAML whose aliases expand to 10**levels strings."""
    lines = ["- ping: 1", '  a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels):
        lines.append(f"  a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


def big_file(c):
    f = c.migdir / "3_big.up.json"
    with open(f, "wb") as fh:  # sparse: 100 MB of NULs in no time
        fh.truncate(100 * 1024 * 1024)
    return {}


def junk(c):
    r = random.Random(20240101)
    (c.migdir / "3_junk.up.json").write_bytes(bytes(r.randrange(256) for _ in range(8192)))
    return {}


def fifo(c):
    os.mkfifo(c.migdir / "3_fifo.up.json")
    return {}


def symlink_loop(c):
    os.symlink("3_loop.up.json", c.migdir / "3_loop.up.json")
    return {}


def dangling(c):
    os.symlink(c.scratch / "nowhere.json", c.migdir / "3_dangling.up.json")
    return {}


def only_a_directory(c):
    for f in c.migdir.iterdir():
        f.unlink()
    (c.migdir / "1_dir.up.json").mkdir()
    return {}


def only_unparseable_version(c):
    for f in c.migdir.iterdir():
        f.unlink()
    (c.migdir / "18446744073709551616_overflow.up.json").write_text("[]")
    return {}


def empty_dir(c):
    for f in c.migdir.iterdir():
        f.unlink()
    return {}


BAD = "invalid migration file"


def file_rows():
    return [
        Row("file-100MB-sparse", 3, ["migration file too large", "3_big.up.json"], setup=big_file),
        Row("file-binary-junk", 3, [BAD, "3_junk.up.json"], setup=junk),
        Row("file-json-nesting-10000", 3, [BAD, "3_d.up.json", r"LEVELS_EXCEEDED|nest|deep"],
            files={"3_d.up.json": "[" * 10000 + "]" * 10000}),
        Row("file-json-nesting-10000-in-document", 3, [BAD, r"LEVELS_EXCEEDED|nest|deep"],
            files={"3_d.up.json": deep_json(10000)}),
        Row("file-yaml-nesting-10000-flow", 3, [BAD, "3_d.up.yaml", "nesting deeper than 100"],
            files={"3_d.up.yaml": "[" * 10000 + "]" * 10000}),
        Row("file-yaml-nesting-10000-block", 3, [BAD, "nesting deeper than 100"],
            files={"3_d.up.yaml": "".join(" " * i + "-\n" for i in range(10000))}),
        Row("file-invalid-utf8-in-string", 3, [BAD, r"UTF-?8"],
            files={"3_s.up.json": b'[{"insert": "a", "documents": [{"v": "\xc3\x28 \xff"}]}]'}),
        Row("file-truncated-utf8", 3, [BAD, r"UTF-?8"],
            files={"3_s.up.json": b'[{"insert": "a", "documents": [{"v": "\xe2\x82"}]}]'}),
        Row("file-symlink-loop", 3, ["cannot read migration file", r"Too many levels of symbolic links|Symbolic link loop"],
            setup=symlink_loop),
        Row("file-fifo", 3, ["cannot read migration file", "not a regular file"], setup=fifo),
        Row("file-dangling-symlink", 3, ["cannot read migration file", "No such file"], setup=dangling),
        Row("file-raw-NUL", 3, [BAD, "NUL"],
            files={"3_z.up.json": b'[{"insert": "a\x00b", "documents": [{"_id": 1}]}]'}),
        Row("file-escaped-NUL-in-key", 3, [BAD, r"NUL|\\u0000|key"],
            files={"3_z.up.json": '[{"insert": "a", "documents": [{"a\\u0000b": 1}]}]'}),
        Row("file-BOM", 3, [BAD, "3_marked.up.json", r"\bBOM\b|byte.order.mark"],
            files={"3_marked.up.json": b'\xef\xbb\xbf[{"insert": "a", "documents": [{"_id": 3}]}]'}),
        Row("file-empty-element", 3, [BAD, "empty document"], files={"3_e.up.json": "[{}]"}),
        Row("file-non-document-element", 3, [BAD, "element 1 is not a document"],
            files={"3_e.up.json": '[{"ping": 1}, 5]'}),
        Row("file-null-element", 3, [BAD, "element 0 is not a document"], files={"3_e.up.json": "[null]"}),
        Row("file-string-element-yaml", 3, [BAD, "not a document"], files={"3_e.up.yaml": "- ping\n"}),
        # Past int64 the state cannot hold the version (it would wrap to a
        # negative one and every later run would misread it).
        Row("file-version-past-int64", 3, ["9223372036854775808_x.up.json", "larger than 9223372036854775807"],
            files={"9223372036854775808_x.up.json": "[]"}),
        Row("file-version-uint64-max", 3, ["18446744073709551615_x.up.json", "larger than"],
            files={"18446744073709551615_x.up.json": "[]"}),
        Row("file-version-past-int64-validate", 3, ["larger than 9223372036854775807"],
            files={"9223372036854775808_x.up.json": "[]"}, cmd=("validate",)),
        # Terminal escapes in a file name reach no output raw.
        Row("file-name-with-escape", 3, [BAD, r"3_x(\\u001b|\\x1b)\[31m"],
            files={"3_x\x1b[31m.up.json": "[not json"}),
        Row("file-name-with-escape-text-log", 3, ["3_x"], env={"LOG_FORMAT": "text"},
            files={"3_x\x1b]0;pwned\x07.up.json": "[not json"}),
        Row("file-empty-dir-validate", 3, "no migrations found",
            args=lambda c: ["-path", mkdir(c.scratch / "empty"), "validate"]),
        Row("file-empty-dir-up", 3, "no migrations found",
            args=lambda c: ["-path", mkdir(c.scratch / "empty"), "up"]),
        Row("file-duplicate-versions", 3, ["duplicate migration", "1_one.up.json", "001_again.up.json"],
            files={"001_again.up.json": "[]"}),
        Row("file-yaml-unknown-tag", 3, [BAD, "only the !!str tag"],
            files={"3_t.up.yaml": "- ping: !!binary aGVsbG8=\n"}),
        Row("file-numberInt-overflow", 3, [BAD, "99999999999"],
            files={"3_n.up.json": '[{"insert": "a", "documents": [{"v": {"$numberInt": "99999999999"}}]}]'}),
        Row("file-registry-junk", 3, ["invalid migration registry", ".migration-registry.yaml"],
            files={".migration-registry.yaml": b"\x00\xff: ["}),
        Row("file-name-with-newline-and-bad-body", 3, [BAD],
            files={'3_evil\n{"level":"INFO","msg":"forged"}.up.json': "["}),
        Row("file-name-invalid-utf8-and-bad-body", 3, [BAD],
            files={b"3_\xff\xfe.up.json": "["}),
        Row("file-only-a-directory", 3, "no migrations found", setup=only_a_directory),
        Row("file-only-unparseable-version", 3, "no migrations found", setup=only_unparseable_version),
        Row("file-empty-directory", 3, "no migrations found", setup=empty_dir),
        # A few hundred bytes whose aliases expand to 10**7 strings (~70 MB of
        # JSON, far past the 16 MB a command may be): must be refused up front.
        Row("file-yaml-alias-bomb-1e7", 3, [BAD, r"alias|too large|expan|16 ?MB|limit"],
            files={"3_x.up.yaml": alias_bomb(7)}, limit_as=2 << 30),
        # ... and to 10**10 (~60 GB): must be refused, not eat the node's memory.
        Row("file-yaml-alias-bomb-1e10", 3, [BAD, r"alias|too large|expan"],
            files={"3_x.up.yaml": alias_bomb(10)}, limit_as=2 << 30),
    ]


ROWS = env_rows() + flag_rows() + url_rows() + file_rows()
assert len({r.id for r in ROWS}) == len(ROWS)


# --------------------------------------------------------------------------
# Running a row


GOOD = {
    "1_one.up.json": [{"insert": "a", "documents": [{"_id": 1}]}],
    "1_one.down.json": [{"delete": "a", "deletes": [{"q": {"_id": 1}, "limit": 1}]}],
    "2_two.up.json": [{"insert": "a", "documents": [{"_id": 2}]}],
}


def run_limited(args, env, limit_as, timeout=HANG):
    """Like run_mi, under an address-space limit (inputs that may eat memory)."""
    import resource

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (limit_as, limit_as))

    env = dict(env)
    preexec = limit
    if "ASAN_OPTIONS" in os.environ:
        # ASan reserves terabytes of address space for its shadow memory, so
        # an address-space limit stops it from starting; bound its resident
        # memory instead.
        env["ASAN_OPTIONS"] = (os.environ["ASAN_OPTIONS"] +
                               f":hard_rss_limit_mb={limit_as // (1024 * 1024)}")
        preexec = None
    argv = [str(MI_BIN)] + [str(x) for x in args]
    p = subprocess.run(argv, env=clean_env(env), stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=timeout, preexec_fn=preexec)
    return Result(argv, p.returncode, p.stdout.decode("utf-8", "replace"),
                  p.stderr.decode("utf-8", "replace"))


def run(args, env, limit_as=None):
    settled()
    t0 = time.monotonic()
    if limit_as:
        res = run_limited(args, env, limit_as)
    else:
        res = run_mi(args, env=env, timeout=HANG)
    res.elapsed = time.monotonic() - t0
    OUTPUTS.append(res.output)
    return res


@pytest.fixture
def ctx(ferretdb, dbname, migdir, tmp_path):
    write_migrations(migdir, GOOD)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    return Ctx(ferretdb, dbname, migdir, scratch)


def assert_untouched(mongo, dbname):
    assert mongo[dbname].list_collection_names() == [], (
        f"the database was touched: {mongo[dbname].list_collection_names()}")
    assert dbname not in mongo.list_database_names()


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_hostile_input(row, ctx, mongo, tmp_path):
    term = tmp_path / "termination-log"
    env = {"TERMINATION_MESSAGE_PATH": str(term), "MAX_RETRIES": "1"}
    if not row.no_url:
        env["DATABASE_URL"] = row.url(ctx) if row.url else ctx.url()
    for name, body in row.files.items():
        p = ctx.migdir / (os.fsdecode(name) if isinstance(name, bytes) else name)
        if isinstance(name, bytes):
            with open(os.path.join(os.fsencode(ctx.migdir), name), "wb") as f:
                f.write(body.encode() if isinstance(body, str) else body)
        else:
            write(p, body)
    if row.setup:
        env.update(row.setup(ctx))
    # The row's bad value wins over the defaults above (MAX_RETRIES included).
    env.update(row.env)
    args = row.args(ctx) if row.args else ["-path", ctx.migdir] + row.cmd

    res = run(args, env, row.limit_as)

    assert CANARY_PASSWORD not in res.output, f"canary password leaked: {res!r}"
    if term.exists():
        assert CANARY_PASSWORD.encode() not in term.read_bytes(), term.read_bytes()
        # One line for people: no control character but its final newline.
        assert not re.search(rb"[\x00-\x09\x0b-\x1f\x7f]", term.read_bytes()), term.read_bytes()
    if str(env.get("LOG_FORMAT", "")).lower() == "text":
        assert not re.search(r"[\x00-\x09\x0b-\x1f\x7f]", res.stderr), res.stderr
    assert res.returncode == row.code, f"expected exit {row.code}: {res!r}"
    for ph in row.phrases:
        assert re.search(ph, res.output, re.I) or ph.lower() in res.output.lower(), (
            f"the message does not say {ph!r}: {res!r}")
    if row.limit_as:
        check_mi_output(res, env)  # run_mi did it for the others
    assert res.elapsed < HANG, res
    assert_untouched(mongo, ctx.dbname)


def test_status_and_plan_tables_escape_control_characters(ferretdb, mongo, new_db, tmp_path):
    name, url, db = new_db()
    d = write_migrations(tmp_path / "m", {"1_a\x1b[2Jb.up.json": [{"ping": 1}]})
    for cmd in (["status"], ["plan"], ["validate"]):
        res = run_mi(["-path", d, "-database", url, *cmd])
        assert res.returncode in (0, 10), res
        assert "\x1b" not in res.stdout, res
        if cmd != ["validate"]:
            assert "a\\x1b[2Jb" in res.stdout, res


def test_table_is_big_enough():
    assert len(ROWS) >= 40
    kinds = {r.id.split("-")[0] for r in ROWS}
    assert kinds == {"env", "flag", "cmd", "url", "file"}


# --------------------------------------------------------------------------
# Not errors, but hostile-looking: they must behave as golang-migrate does


def test_name_with_spaces_is_a_valid_migration_in_both_tools(ferretdb, mongo, new_db, tmp_path):
    """`1_my name.up.json` matches ^([0-9]+)_(.*)\\.(down|up)\\.(.*)$: golang-migrate
    applies it, and so must migrate-init, with the same state and data."""
    files = {
        "1_my name.up.json": [{"insert": "a", "documents": [{"_id": "spaces"}]}],
        "1_my name.down.json": [{"delete": "a", "deletes": [{"q": {}, "limit": 0}]}],
        "2_  two  spaces .up.json": [{"insert": "a", "documents": [{"_id": "more"}]}],
    }
    d = write_migrations(tmp_path / "m", files)
    gm_name, gm_url, gm_db = new_db()
    mi_name, mi_url, mi_db = new_db()
    g = run_gm(["-path", d, "-database", gm_url, "up"])
    assert g.returncode == 0, g
    settled()
    m = run_mi(["-path", d, "-database", mi_url, "up"])
    OUTPUTS.append(m.output)
    assert m.returncode == 0, m
    assert version_of(gm_db) == version_of(mi_db) == (2, False)
    assert sorted(x["_id"] for x in gm_db["a"].find()) == sorted(x["_id"] for x in mi_db["a"].find()) \
        == ["more", "spaces"]
    names = [r.get("name") for r in m.logs if r.get("msg") == "migration applied"]
    assert names == ["my name", "  two  spaces "], m
    # And back down through the spaced name, in both.
    assert run_gm(["-path", d, "-database", gm_url, "down", "-all"]).returncode == 0
    m = run_mi(["-path", d, "-database", mi_url, "down", "-all"])
    OUTPUTS.append(m.output)
    assert m.returncode == 0, m
    assert version_of(gm_db) == version_of(mi_db) == (-1, False)


@pytest.mark.parametrize("var", ["MAX_RETRIES", "RETRY_INTERVAL", "WAIT_TIMEOUT", "LOCK_TIMEOUT",
                                 "LOCK_LEASE", "LOCK_STALE_AFTER", "STOP_GRACE_PERIOD",
                                 "DEPENDENCY_TIMEOUT", "TARGET_VERSION", "ALLOW_BREAKING",
                                 "LOG_FORMAT", "LOG_LEVEL"])
def test_empty_value_means_unset(var, ctx, mongo, db):
    """A Kubernetes manifest often renders a missing value as "": each
    variable set to the empty string behaves as if it were not set."""
    env = {"DATABASE_URL": ctx.url(), var: ""}
    res = run(["-path", ctx.migdir], env)
    assert res.returncode == 0, res
    assert version_of(db) == (2, False)


@pytest.fixture(scope="module", autouse=True)
def no_canary_in_any_output():
    """Across every run of this file, whichever tests were selected."""
    yield
    leaked = [o for o in OUTPUTS if CANARY_PASSWORD in o]
    assert not leaked, f"canary password in {len(leaked)} outputs: {leaked[:3]}"
