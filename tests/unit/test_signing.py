"""Ed25519 signatures over a version's parts (stackha.trust.signing), attacked directly."""

from __future__ import annotations

import hashlib
import json

import pytest

from stackha.model.bundle import (
    Bundle,
    ConfigVersion,
    PartSignature,
    parse_version,
    serialise_version,
)
from stackha.trust.signing import (
    PARTS,
    KeyFileError,
    TrustedKeys,
    canonical,
    generate,
    key_id,
    load_private,
    load_trusted,
    sign_parts,
    verify_part,
    verify_parts,
    write_keypair,
)

FILES = {"stackha.yaml": b"cluster: a\n", "nginx/nginx.conf": b"events {}\n",
         "nginx/html/index.html": b"hello\n"}


def _bundle(**changes: bytes) -> Bundle:
    files = dict(FILES)
    files.update(changes)
    return Bundle.from_contents(files)


@pytest.fixture(scope="module")
def key():
    return generate()


@pytest.fixture(scope="module")
def trusted(key):
    return TrustedKeys.of([key.public])


def test_every_part_is_signed_and_verifies(key, trusted):
    signatures = sign_parts(key, "a", 7, _bundle())
    assert set(signatures) == set(PARTS) == {"spec", "nginx", "mycat"}
    assert {s.key_id for s in signatures.values()} == {key.key_id}
    assert verify_parts(trusted, "a", 7, PARTS, _bundle(), signatures) is None


def test_an_unsigned_part_is_refused(key, trusted):
    signatures = sign_parts(key, "a", 7, _bundle())
    del signatures["nginx"]
    assert verify_parts(trusted, "a", 7, ["spec", "nginx"], _bundle(), signatures) \
        == "nginx part is unsigned"
    # A node verifies only what it reads: a director (spec only) does not need nginx's.
    assert verify_parts(trusted, "a", 7, ["spec"], _bundle(), signatures) is None


def test_a_key_the_node_does_not_pin_is_refused(trusted):
    stranger = generate()
    signatures = sign_parts(stranger, "a", 7, _bundle())
    reason = verify_part(trusted, "a", 7, "spec", _bundle(), signatures)
    assert reason is not None and f"unknown key {stranger.key_id}" in reason


def test_a_changed_file_with_its_checksum_updated_is_refused(key, trusted):
    signatures = sign_parts(key, "a", 7, _bundle())
    forged = _bundle(**{"nginx/html/index.html": b"owned\n"})
    reason = verify_part(trusted, "a", 7, "nginx", forged, signatures)
    assert reason is not None and "bad signature" in reason
    assert verify_part(trusted, "a", 7, "spec", forged, signatures) is None  # untouched part


def test_a_file_added_to_an_empty_part_is_refused(key, trusted):
    signatures = sign_parts(key, "a", 7, _bundle())  # no mycat files: mycat signed empty
    forged = _bundle(**{"mycat/server.xml": b"<server/>"})
    assert "bad signature" in (verify_part(trusted, "a", 7, "mycat", forged, signatures) or "")


def test_a_part_replayed_as_another_version_cluster_or_part_is_refused(key, trusted):
    signatures = sign_parts(key, "a", 7, _bundle())
    assert "version number 8" in (verify_part(trusted, "a", 8, "spec", _bundle(),
                                              signatures) or "")
    assert "cluster b" in (verify_part(trusted, "b", 7, "spec", _bundle(), signatures) or "")
    swapped = {**signatures, "mycat": signatures["nginx"]}
    assert "bad signature" in (verify_part(trusted, "a", 7, "mycat", _bundle(), swapped) or "")


def test_a_malformed_signature_is_a_reason_not_an_exception(key, trusted):
    for text in ("", "not base64!", "AAAA"):
        signatures = {"spec": PartSignature(key.key_id, text)}
        assert "malformed signature" in (verify_part(trusted, "a", 7, "spec", _bundle(),
                                                     signatures) or "")


def test_either_of_two_pinned_keys_verifies(key):
    new = generate()
    both = TrustedKeys.of([key.public, new.public])
    for signer in (key, new):
        assert verify_parts(both, "a", 7, PARTS, _bundle(),
                            sign_parts(signer, "a", 7, _bundle())) is None


def test_canonical_bytes_bind_everything_and_do_not_depend_on_order():
    one = canonical("a", 7, "nginx", "k", {"nginx/b": "2", "nginx/a": "1"})
    assert one == canonical("a", 7, "nginx", "k", {"nginx/a": "1", "nginx/b": "2"})
    body = json.loads(one.split(b"\n", 1)[1])
    assert body == {"cluster": "a", "version": 7, "part": "nginx", "key_id": "k",
                    "files": [["nginx/a", "1"], ["nginx/b", "2"]]}
    # No value can be read as another field: a path holding a quote is escaped.
    tricky = canonical("a", 7, "nginx", "k", {'nginx/x","y': "1"})
    assert json.loads(tricky.split(b"\n", 1)[1])["files"] == [['nginx/x","y', "1"]]


def test_key_id_is_the_start_of_the_raw_public_keys_sha256(key):
    raw = bytes(key.public)
    assert len(raw) == 32
    assert key_id(key.public) == hashlib.sha256(raw).hexdigest()[:16]
    assert len(key.key_id) == 16


def test_signatures_survive_the_version_document_and_bad_ones_parse_as_empty(key):
    bundle = _bundle()
    version = ConfigVersion(3, bundle, "now", "me", "m", signatures=sign_parts(key, "a", 3,
                                                                               bundle))
    parsed, problems = parse_version(serialise_version(version), "v3")
    assert problems == [] and parsed is not None
    assert dict(parsed.signatures) == dict(version.signatures)
    document = json.loads(serialise_version(version))
    document["signatures"] = {"spec": "garbage", "nginx": {"key_id": 5}, "7": None}
    parsed, problems = parse_version(json.dumps(document).encode(), "v3")
    assert problems == [] and parsed is not None
    assert parsed.signatures["spec"] == PartSignature("", "")
    assert parsed.signatures["nginx"] == PartSignature("", "")
    document["signatures"] = ["not", "a", "map"]
    parsed, _ = parse_version(json.dumps(document).encode(), "v3")
    assert parsed is not None and dict(parsed.signatures) == {}


def test_keypair_files_modes_no_overwrite_and_loading(tmp_path):
    key = write_keypair(tmp_path / "coord")
    private, public = tmp_path / "coord.key", tmp_path / "coord.pub"
    assert private.stat().st_mode & 0o777 == 0o600
    assert public.stat().st_mode & 0o777 == 0o644
    assert load_private(private).key_id == key.key_id
    assert load_trusted([public]).ids == (key.key_id,)
    assert load_trusted([tmp_path]).ids == (key.key_id,)  # a directory: every *.pub
    with pytest.raises(KeyFileError, match="exists"):
        write_keypair(tmp_path / "coord")
    private.chmod(0o644)
    with pytest.raises(KeyFileError, match=r"accessible by others \(mode 0644\)"):
        load_private(private)


def test_unusable_key_files_are_one_line_errors(tmp_path):
    (tmp_path / "junk.pub").write_text("hello\n")
    with pytest.raises(KeyFileError, match=r"junk\.pub: not a PEM public key"):
        load_trusted([tmp_path / "junk.pub"])
    with pytest.raises(KeyFileError, match="cannot read public key"):
        load_trusted([tmp_path / "missing.pub"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(KeyFileError, match=r"no \*\.pub"):
        load_trusted([tmp_path / "empty"])
    key = write_keypair(tmp_path / "k")
    with pytest.raises(KeyFileError, match="not a PEM public key"):
        load_trusted([tmp_path / "k.key"])  # a private key pinned by mistake
    assert key.key_id
