"""REF parsing and artifact naming (docs/architecture.md, Vocabulary): each documented example is a row."""

from __future__ import annotations

import os
import pathlib
import sys

import pytest

from headwater.errors import InvalidInput, InvalidRef
from headwater.refs import (
    LATEST,
    Ref,
    file_uri_to_path,
    is_alias,
    is_label,
    is_uri,
    name_to_ol_dataset,
    normalize_name,
    normalize_uri,
    ol_dataset_to_name,
    parse_ref,
    path_to_file_uri,
    validate_alias,
    validate_name,
)

FORMS = "use NAME, NAME:vN, NAME:ALIAS or NAME@DIGEST (8+ hex chars)"
posix_only = pytest.mark.skipif(os.name == "nt", reason="POSIX paths")

# --- parse_ref ---------------------------------------------------------------------------------

PARSE_CASES = [
    ("mnist", Ref("mnist", alias=LATEST)),
    ("mnist:v3", Ref("mnist", label="v3")),
    ("mnist:v03", Ref("mnist", label="v3")),
    ("mnist:v0", Ref("mnist", label="v0")),
    ("mnist:production", Ref("mnist", alias="production")),
    ("mnist:latest", Ref("mnist", alias=LATEST)),
    ("mnist:V3", Ref("mnist", alias="V3")),  # labels are lowercase 'v'; 'V3' is an alias
    ("mnist@0123abcd", Ref("mnist", digest="0123abcd")),
    ("mnist@0123ABCDEF", Ref("mnist", digest="0123abcdef")),
    ("mnist@blake3:0123abcdef", Ref("mnist", digest="blake3:0123abcdef")),
    ("file:///data/users.csv", Ref("file:///data/users.csv", alias=LATEST)),
    ("file:///data/users.csv:v2", Ref("file:///data/users.csv", label="v2")),
    (
        "postgres://db:5432/shop.public.orders:production",
        Ref("postgres://db:5432/shop.public.orders", alias="production"),
    ),
    ("postgres://db:5432", Ref("postgres://db:5432", alias=LATEST)),
    ("postgres://db", Ref("postgres://db:5432", alias=LATEST)),
    ("postgresql://user:pw@db/shop.public.orders", Ref("postgres://db:5432/shop.public.orders")),
    ("s3a://bucket/a/../b/", Ref("s3://bucket/b", alias=LATEST)),
    ("s3a://bucket/a/../b/:v1", Ref("s3://bucket/b", label="v1")),
    ("s3://bucket/data@0123abcd", Ref("s3://bucket/data", digest="0123abcd")),
    ("s3://bucket/x@2024.csv", Ref("s3://bucket/x@2024.csv")),  # '@' in a key, not a digest
    ("http://host:8080/x", Ref("http://host:8080/x")),
    ("mnist:5432", Ref("mnist:5432")),  # a suffix that is neither label nor alias stays in the name
    # Interior spaces are allowed so that every valid name is also a valid REF.
    ("my model:v1", Ref("my model", label="v1")),
]


@pytest.mark.parametrize(("text", "expected"), PARSE_CASES, ids=[c[0] for c in PARSE_CASES])
def test_parse_ref(text: str, expected: Ref) -> None:
    assert parse_ref(text) == expected


@pytest.mark.parametrize(("text", "expected"), PARSE_CASES, ids=[c[0] for c in PARSE_CASES])
def test_str_parses_back(text: str, expected: Ref) -> None:
    assert parse_ref(str(expected)) == expected


@pytest.mark.parametrize(
    ("ref", "text"),
    [
        (Ref("mnist", label="v3"), "mnist:v3"),
        (Ref("mnist", alias="production"), "mnist:production"),
        (Ref("mnist", digest="blake3:0123abcd"), "mnist@blake3:0123abcd"),
        (Ref("mnist"), "mnist:latest"),
        (Ref("weird:v1"), "weird:v1:latest"),
    ],
)
def test_ref_str(ref: Ref, text: str) -> None:
    assert str(ref) == text


EXISTING = {"weird:v1", "s3://bucket/x:v1", "a@b", "mnist@zz"}

IS_ARTIFACT_CASES = [
    ("weird:v1", Ref("weird:v1", alias=LATEST)),
    ("weird:v1:v2", Ref("weird:v1", label="v2")),
    # is_artifact is asked about the normalised name.
    ("s3a://bucket/x:v1", Ref("s3://bucket/x:v1", alias=LATEST)),
    ("a@b", Ref("a@b", alias=LATEST)),
    ("mnist@zz", Ref("mnist@zz", alias=LATEST)),  # malformed only when no such artifact exists
    ("mnist:v3", Ref("mnist", label="v3")),
    ("other:v1", Ref("other", label="v1")),
]


@pytest.mark.parametrize(("text", "expected"), IS_ARTIFACT_CASES, ids=[c[0] for c in IS_ARTIFACT_CASES])
def test_parse_ref_prefers_existing_names(text: str, expected: Ref) -> None:
    seen: list[str] = []

    def is_artifact(name: str) -> bool:
        seen.append(name)
        return name in EXISTING

    assert parse_ref(text, is_artifact) == expected
    assert seen == [normalize_name(text)]


def test_parse_ref_without_lookup_splits_names_like_refs() -> None:
    assert parse_ref("weird:v1") == Ref("weird", label="v1")


MALFORMED = [
    "",
    " ",
    " mnist",
    "mnist ",
    "mn\nist",
    "mnist\n",
    "mnist\t:v1",
    "mnist\x00",
    "mnist\u2028",
    "mnist\u00a0x",
    "x@zz",
    "mnist@",
    "mnist@0123abc",
    "mnist@0123abcg",
    "mnist@blake3:zz",
    "mnist@blake3:",
    "@0123abcd",
    ":v3",
    ":production",
    "mnist:",
    ":",
    "s3://bucket/x@",
]


@pytest.mark.parametrize("text", MALFORMED, ids=[repr(t) for t in MALFORMED])
def test_malformed_ref(text: str) -> None:
    with pytest.raises(InvalidRef) as info:
        parse_ref(text)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"invalid reference {text!r}: {FORMS}")


def test_malformed_ref_message_example() -> None:
    with pytest.raises(InvalidRef) as info:
        parse_ref("x@zz")
    assert str(info.value).startswith(
        "invalid reference 'x@zz': use NAME, NAME:vN, NAME:ALIAS or NAME@DIGEST (8+ hex chars)"
    )


@pytest.mark.parametrize("text", ["file://data/x.csv", "file://data/x.csv:v2", "s3://:v1", "x" * 1025 + ":v1"])
def test_ref_with_invalid_name(text: str) -> None:
    with pytest.raises(InvalidRef) as info:
        parse_ref(text)
    assert "\n" not in str(info.value)


def test_ref_constructor() -> None:
    assert Ref("m") == Ref("m", alias=LATEST)
    bad: list[dict[str, str]] = [
        {"label": "v1", "alias": "x"},
        {"label": "3"},
        {"alias": "v3"},
        {"alias": "1abc"},
        {"digest": ""},
    ]
    for kwargs in bad:
        with pytest.raises(InvalidRef):
            Ref("m", **kwargs)
    with pytest.raises(InvalidRef):
        Ref("")
    # The store resolves pointer digests too, so the constructor does not insist on hex.
    assert Ref("m", digest="etag:ABC").digest == "etag:ABC"


# --- labels and aliases ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "label", "alias"),
    [
        ("v3", True, False),
        ("v0", True, False),
        ("v", False, True),
        ("V3", False, True),
        ("v3a", False, True),
        ("production", False, True),
        ("latest", False, True),
        ("prod.v2-b_c", False, True),
        ("1abc", False, False),
        ("_x", False, False),
        ("a b", False, False),
        ("", False, False),
        ("v3\n", False, False),
    ],
)
def test_is_label_is_alias(text: str, label: bool, alias: bool) -> None:
    assert is_label(text) is label
    assert is_alias(text) is alias


@pytest.mark.parametrize("alias", ["production", "candidate", "prod.v2", "A-b_c"])
def test_validate_alias_ok(alias: str) -> None:
    assert validate_alias(alias) == alias


@pytest.mark.parametrize("alias", ["latest", "v3", "1abc", "", "a b", "prod\n", "-x"])
def test_validate_alias_rejects(alias: str) -> None:
    with pytest.raises(InvalidRef) as info:
        validate_alias(alias)
    assert "\n" not in str(info.value)


def test_latest_is_reserved_unless_allowed() -> None:
    with pytest.raises(InvalidRef, match="reserved"):
        validate_alias("latest")
    assert validate_alias("latest", allow_latest=True) == "latest"


# --- names -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("mnist", "mnist"),
        ("My Model", "My Model"),
        ("team/mnist", "team/mnist"),
        ("x" * 1024, "x" * 1024),
        ("s3a://bucket/a/", "s3://bucket/a"),
    ],
)
def test_validate_name(name: str, expected: str) -> None:
    assert validate_name(name) == expected


@pytest.mark.parametrize("name", ["", " x", "x ", "a\nb", "a\tb", "a\x7fb", "x" * 1025, "s3://", "file://data/x"])
def test_validate_name_rejects(name: str) -> None:
    with pytest.raises(InvalidRef) as info:
        validate_name(name)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("s3://b/k", True),
        ("file:///x", True),
        ("file:/x", True),
        ("git+ssh://h/r", True),
        ("mnist", False),
        ("mnist:v3", False),
        ("file:x", False),
        ("1s3://b", False),
        ("food_delivery://x", False),
    ],
)
def test_is_uri(text: str, expected: bool) -> None:
    assert is_uri(text) is expected


NORMALIZE_CASES = [
    ("s3a://bucket/x", "s3://bucket/x"),
    ("s3n://bucket/x", "s3://bucket/x"),
    ("gcs://bucket/x", "gs://bucket/x"),
    ("S3://Bucket/Key.CSV", "s3://bucket/Key.CSV"),
    ("s3://bucket/dir/", "s3://bucket/dir"),
    ("s3://bucket/", "s3://bucket"),
    ("s3://bucket", "s3://bucket"),
    ("s3://bucket//a///b", "s3://bucket/a/b"),
    ("s3://bucket/a/./b/../c", "s3://bucket/a/c"),
    ("s3://bucket/../../x", "s3://bucket/x"),
    ("s3://bucket/x?versionId=3#f", "s3://bucket/x"),
    ("s3://bucket/a%20b", "s3://bucket/a%20b"),  # keys are literal text: escapes are kept
    ("file:/data/x.csv", "file:///data/x.csv"),
    ("file://localhost/data/x.csv", "file:///data/x.csv"),
    ("FILE://LOCALHOST/Data/X.csv", "file:///Data/X.csv"),
    ("file:///data/./a/../x.csv/", "file:///data/x.csv"),
    ("file:////data//x.csv", "file:///data/x.csv"),
    ("file:///", "file:///"),
    ("file:///../..", "file:///"),
    ("file:///d/my file.csv", "file:///d/my%20file.csv"),
    ("file:///d/my%20file.csv", "file:///d/my%20file.csv"),
    ("file:///d/caf%C3%A9.csv", "file:///d/café.csv"),
    ("file:///d/50%25.csv", "file:///d/50%25.csv"),
    ("file:///d/50%.csv", "file:///d/50%25.csv"),
    ("file:///d/a%2e%2e/%2E%2E/x", "file:///d/x"),
    ("file:///d/x.csv#frag", "file:///d/x.csv"),
    ("file:///d/x.csv?q=1", "file:///d/x.csv"),
    ("file:///d/%FF.bin", "file:///d/%FF.bin"),
    ("postgres://db/shop.public.orders", "postgres://db:5432/shop.public.orders"),
    ("postgres://db:5432/shop.public.orders", "postgres://db:5432/shop.public.orders"),
    ("postgres://db:6543/shop.public.orders", "postgres://db:6543/shop.public.orders"),
    (
        "postgresql://user:secret@DB.example.com/shop.public.orders?sslmode=require",
        "postgres://db.example.com:5432/shop.public.orders",
    ),
    ("postgres://[::1]/shop", "postgres://[::1]:5432/shop"),
    ("https://Example.com:443/a/?q=1#f", "https://example.com/a?q=1"),
    ("http://user:pw@example.com:80/a", "http://example.com/a"),
    ("http://example.com:8080/a", "http://example.com:8080/a"),
    ("hdfs://nn:8020/a/b/", "hdfs://nn:8020/a/b"),
    ("wasbs://c@Acct.blob.core.windows.net/p/", "wasbs://c@acct.blob.core.windows.net/p"),
    ("foo://u:pw@h/x", "foo://u@h/x"),
    ("bigquery://proj.ds.table", "bigquery://proj.ds.table"),
]


@pytest.mark.parametrize(("uri", "expected"), NORMALIZE_CASES, ids=[c[0] for c in NORMALIZE_CASES])
def test_normalize_uri(uri: str, expected: str) -> None:
    assert normalize_uri(uri) == expected
    assert normalize_uri(expected) == expected  # idempotent
    assert normalize_name(uri) == expected


@pytest.mark.parametrize(
    "uri",
    [
        "mnist",
        "file:relative",
        "file://data/x.csv",
        "s3://",
        "gs:///x",
        "postgres:///x",
        "s3://bucket:abc/x",
        "http://h:99999/",
    ],
)
def test_normalize_uri_rejects(uri: str) -> None:
    with pytest.raises(InvalidRef):
        normalize_uri(uri)


def test_normalize_name_keeps_plain_names() -> None:
    assert normalize_name("Team/MNIST:v3") == "Team/MNIST:v3"


# --- local paths -------------------------------------------------------------------------------


@posix_only
@pytest.mark.parametrize(
    ("path", "uri"),
    [
        ("/data/x.csv", "file:///data/x.csv"),
        ("/data/dir/", "file:///data/dir"),
        ("/data/a/../x.csv", "file:///data/x.csv"),
        ("/", "file:///"),
        ("/d/my file#1?.csv", "file:///d/my%20file%231%3F.csv"),
        ("/d/50%.csv", "file:///d/50%25.csv"),
        ("/d/café.csv", "file:///d/café.csv"),
        ("/d/a:b@c.csv", "file:///d/a:b@c.csv"),
        (pathlib.Path("/data/x.csv"), "file:///data/x.csv"),
        (b"/d/\xff.bin", "file:///d/%FF.bin"),
    ],
)
def test_path_to_file_uri(path: str | pathlib.Path | bytes, uri: str) -> None:
    assert path_to_file_uri(path) == uri


@posix_only
def test_path_to_file_uri_relative(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert path_to_file_uri("sub/x.csv") == path_to_file_uri(tmp_path / "sub" / "x.csv")
    assert file_uri_to_path(path_to_file_uri("sub/x.csv")) == tmp_path / "sub" / "x.csv"


@posix_only
@pytest.mark.parametrize(
    "path",
    [
        "/data/x.csv",
        "/d/my file#1?.csv",
        "/d/50%.csv",
        "/d/50%25.csv",
        "/d/café.csv",
        os.fsdecode(b"/d/\xff.bin"),
        "/",
    ],
)
def test_file_uri_round_trip(path: str) -> None:
    assert file_uri_to_path(path_to_file_uri(path)) == pathlib.Path(path)


@posix_only
@pytest.mark.parametrize(
    ("uri", "path"),
    [
        ("file:/d/x.csv", "/d/x.csv"),
        ("file://localhost/d/my%20file.csv", "/d/my file.csv"),
        ("file:///d/a/../x", "/d/x"),
    ],
)
def test_file_uri_to_path(uri: str, path: str) -> None:
    assert file_uri_to_path(uri) == pathlib.Path(path)


@pytest.mark.parametrize("uri", ["s3://bucket/x", "mnist", "/data/x.csv"])
def test_file_uri_to_path_rejects_other_uris(uri: str) -> None:
    with pytest.raises(InvalidInput):
        file_uri_to_path(uri)


def test_path_to_file_uri_rejects_empty() -> None:
    with pytest.raises(InvalidInput):
        path_to_file_uri("")


# --- OpenLineage naming ------------------------------------------------------------------------

OL_TO_NAME = [
    ("s3://bucket", "key", "s3://bucket/key"),
    ("s3://bucket/", "/key", "s3://bucket/key"),
    ("s3a://bucket", "a/../b/", "s3://bucket/b"),
    ("gs://bucket", "a/b.parquet", "gs://bucket/a/b.parquet"),
    ("file", "/d/x.csv", "file:///d/x.csv"),
    ("file", "/d/my file.csv", "file:///d/my%20file.csv"),
    ("file", "/d/a%20b", "file:///d/a%2520b"),  # raw paths: '%' is a character, not an escape
    ("file://", "/d/x.csv", "file:///d/x.csv"),
    ("postgres://db:5432", "shop.public.orders", "postgres://db:5432/shop.public.orders"),
    ("postgresql://db", "shop.public.orders", "postgres://db:5432/shop.public.orders"),
    ("bigquery", "proj.ds.table", "bigquery://proj.ds.table"),
    ("kafka://broker:9092", "events", "kafka://broker:9092/events"),
    ("headwater", "mnist", "mnist"),
    ("headwater", "team/my model", "team/my model"),
    ("food_delivery", "public.orders", "food_delivery://public.orders"),
]


@pytest.mark.parametrize(("namespace", "name", "expected"), OL_TO_NAME, ids=[f"{c[0]}+{c[1]}" for c in OL_TO_NAME])
def test_ol_dataset_to_name(namespace: str, name: str, expected: str) -> None:
    assert ol_dataset_to_name(namespace, name) == expected


NAME_TO_OL = [
    ("s3://bucket/key", ("s3://bucket", "key")),
    ("s3://bucket/a/b.csv", ("s3://bucket", "a/b.csv")),
    ("s3a://bucket/a/", ("s3://bucket", "a")),
    ("file:///d/x.csv", ("file", "/d/x.csv")),
    ("file:///d/my%20file.csv", ("file", "/d/my file.csv")),
    ("postgres://db:5432/shop.public.orders", ("postgres://db:5432", "shop.public.orders")),
    ("postgres://db/shop.public.orders", ("postgres://db:5432", "shop.public.orders")),
    ("https://example.com/a?q=1", ("https://example.com", "a?q=1")),
    ("bigquery://proj.ds.table", ("bigquery", "proj.ds.table")),
    ("s3://bucket", ("s3", "bucket")),
    ("mnist", ("headwater", "mnist")),
    ("mnist:v3", ("headwater", "mnist:v3")),
    ("food_delivery://public.orders", ("food_delivery", "public.orders")),
]


@pytest.mark.parametrize(("name", "expected"), NAME_TO_OL, ids=[c[0] for c in NAME_TO_OL])
def test_name_to_ol_dataset(name: str, expected: tuple[str, str]) -> None:
    assert name_to_ol_dataset(name) == expected


OL_ROUND_TRIP = [
    ("s3://bucket", "key"),
    ("gs://bucket", "a/b.parquet"),
    ("file", "/d/x.csv"),
    ("file", "/d/my file.csv"),
    ("file", "/d/50%.csv"),
    ("file", "/d/a%20b"),
    ("file", "/d/café.csv"),
    ("postgres://db:5432", "shop.public.orders"),
    ("https://example.com", "a?q=1"),
    ("bigquery", "proj.ds.table"),
    ("kafka://broker:9092", "events"),
    ("wasbs://c@acct.blob.core.windows.net", "p/x.csv"),
    ("headwater", "mnist"),
    ("headwater", "team/my model"),
    ("food_delivery", "public.orders"),
]


@pytest.mark.parametrize(("namespace", "name"), OL_ROUND_TRIP, ids=[f"{c[0]}+{c[1]}" for c in OL_ROUND_TRIP])
def test_ol_round_trip(namespace: str, name: str) -> None:
    artifact = ol_dataset_to_name(namespace, name)
    assert name_to_ol_dataset(artifact) == (namespace, name)
    assert ol_dataset_to_name(*name_to_ol_dataset(artifact)) == artifact


def test_custom_default_namespace() -> None:
    assert name_to_ol_dataset("mnist", "team") == ("team", "mnist")
    assert ol_dataset_to_name("team", "mnist", default_namespace="team") == "mnist"
    assert ol_dataset_to_name("headwater", "mnist", default_namespace="team") == "headwater://mnist"


@pytest.mark.parametrize(
    ("namespace", "name"),
    [("", "x"), ("s3://bucket", ""), ("file", "relative/x.csv"), ("file", "x\n")],
)
def test_ol_dataset_to_name_rejects(namespace: str, name: str) -> None:
    with pytest.raises(InvalidRef):
        ol_dataset_to_name(namespace, name)


def test_stdlib_only() -> None:
    import headwater.refs as refs

    source = pathlib.Path(refs.__file__).read_text(encoding="utf-8")
    imported = {
        line.split()[1].split(".")[0]
        for line in source.splitlines()
        if line.startswith(("import ", "from ")) and not line.startswith("from __future__")
    }
    assert imported - {"headwater"} <= set(sys.stdlib_module_names)
