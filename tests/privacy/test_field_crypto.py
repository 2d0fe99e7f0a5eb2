"""Field encryption keys, tokens and rotation (dagster_project/privacy/field_crypto.py)."""

from __future__ import annotations

import hashlib
import hmac
import stat
from pathlib import Path

import psycopg
import pytest
from cryptography.fernet import Fernet

from dagster_project.privacy import field_crypto, keys
from dagster_project.settings import SettingsError

KEY_A = Fernet.generate_key()
KEY_B = Fernet.generate_key()
SECRET = b"test-secret"


def hmac_hex(value: str) -> str:
    """The keyed hash computed independently of keys.HashKey."""
    return hmac.new(SECRET, value.encode(), hashlib.sha256).hexdigest()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv(field_crypto.KEYS_ENV, raising=False)
    return tmp_path / "home"


def test_key_file_is_generated_once_private_and_reused(home: Path) -> None:
    first = field_crypto.load_cipher(home)
    path = field_crypto.key_file(home)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    second = field_crypto.load_cipher(home)
    assert first.keys == second.keys and len(first.keys) == 1
    assert second.decrypt(first.encrypt("anna@shop.io")) == "anna@shop.io"


def test_environment_keys_win_the_first_encrypts_and_all_decrypt(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = field_crypto.FieldCipher((KEY_B,)).encrypt("+15551234567")
    monkeypatch.setenv(field_crypto.KEYS_ENV, f"{KEY_A.decode()}, {KEY_B.decode()}")
    cipher = field_crypto.load_cipher(home)
    assert cipher.keys == (KEY_A, KEY_B)
    assert not field_crypto.key_file(home).exists()  # no file when the setting is given
    assert cipher.decrypt(old) == "+15551234567"
    assert Fernet(KEY_A).decrypt(cipher.encrypt("x").encode()) == b"x"


@pytest.mark.parametrize("value", ["not-a-key", f"{KEY_A.decode()},short", ",,"])
def test_a_malformed_environment_key_names_the_setting_and_never_echoes_it(
    home: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv(field_crypto.KEYS_ENV, value)
    with pytest.raises(SettingsError) as raised:
        field_crypto.load_cipher(home)
    assert raised.value.setting == field_crypto.KEYS_ENV
    assert str(raised.value).startswith(f"{field_crypto.KEYS_ENV}: ")
    assert KEY_A.decode() not in str(raised.value) and "short" not in str(raised.value)


def test_a_malformed_key_file_names_the_file_and_the_line(home: Path) -> None:
    path = field_crypto.key_file(home)
    path.parent.mkdir(parents=True)
    path.write_text(f"{KEY_A.decode()}\nnot-a-key\n")
    with pytest.raises(SettingsError, match="key 2 is not a Fernet key") as raised:
        field_crypto.load_cipher(home)
    assert raised.value.setting == str(path)


def test_the_cipher_never_shows_its_keys(home: Path) -> None:
    cipher = field_crypto.FieldCipher((KEY_A, KEY_B))
    assert KEY_A.decode() not in repr(cipher) and KEY_A.decode() not in str(cipher)
    assert cipher.fingerprint in repr(cipher) and len(cipher.fingerprint) == 12
    with pytest.raises(field_crypto.FieldDecryptError) as raised:
        field_crypto.FieldCipher((KEY_B,)).decrypt(field_crypto.FieldCipher((KEY_A,)).encrypt("a@b.io"))
    assert KEY_B.decode() not in str(raised.value)


def test_protected_email_token_is_the_keyed_hash_of_the_normalised_email() -> None:
    protector = field_crypto.FieldProtector(
        keys.HashKey.from_secret(SECRET), field_crypto.FieldCipher((KEY_A,))
    )
    email = protector.protect_email("  Anna (at) Shop.IO ")
    assert email.token == hmac_hex("anna@shop.io")
    assert Fernet(KEY_A).decrypt(email.ciphertext.encode()) == b"anna@shop.io"
    assert (email.is_valid, email.is_placeholder, email.has_at) == (True, False, True)
    assert email.without_at_token == hmac_hex("annashop.io")
    assert email.without_tld_token == hmac_hex("anna@shop")
    malformed = protector.protect_email("annashop.io")
    assert (malformed.token, malformed.is_valid, malformed.has_at) == (hmac_hex("annashop.io"), False, False)
    assert malformed.without_at_token is None and malformed.without_tld_token is None
    assert protector.protect_email("NoEmail@x.com").is_placeholder
    nothing = protector.protect_email("  ")
    assert (nothing.token, nothing.ciphertext, nothing.is_valid) == (None, None, False)


def test_protected_phone_carries_what_the_identity_models_need() -> None:
    protector = field_crypto.FieldProtector(
        keys.HashKey.from_secret(SECRET), field_crypto.FieldCipher((KEY_A,))
    )
    bare = protector.protect_phone("(555) 123-4567")
    assert bare.token == hmac_hex("+15551234567")
    assert not bare.is_international and bare.national_token == hmac_hex("5551234567")
    assert bare.national_number_tokens == () and bare.placeholder_reason is None
    foreign = protector.protect_phone("+44 5551234567")
    assert foreign.is_international and foreign.national_token is None
    without_code = ("45551234567", "5551234567", "551234567")  # 1, 2 or 3 calling-code digits off
    assert foreign.national_number_tokens == tuple(hmac_hex(n) for n in without_code)
    repeated = protector.protect_phone("555-555-5555")
    assert repeated.placeholder_reason == "placeholder phone (one repeated digit)"
    assert protector.protect_phone("123").token is None


def test_rotation_re_encrypts_columns_and_json_once_and_keeps_the_plaintext(warehouse_url: str) -> None:
    old = field_crypto.FieldCipher((KEY_B,))
    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        conn.execute("create table raw.people (id int, email_encrypted text, note text)")
        conn.execute("create table raw.web_events (message_id text, traits jsonb)")
        conn.execute("create view raw.people_view as select * from raw.people")
        conn.execute(
            "insert into raw.people values (1, %s, 'a'), (2, %s, 'b'), (3, null, 'c')",
            (old.encrypt("anna@shop.io"), old.encrypt("bob@shop.io")),
        )
        conn.execute(
            "insert into raw.web_events values "
            "('m1', jsonb_build_object('email_encrypted', %s::text, 'x', 1)), ('m2', '{\"x\": 2}')",
            (old.encrypt("carl@shop.io"),),
        )
        rotated = field_crypto.FieldCipher((KEY_A, KEY_B))
        assert field_crypto.rotate_stored(conn, rotated) == {
            "raw.people.email_encrypted": 2,
            "raw.web_events.traits->'email_encrypted'": 1,
        }
        new_only = field_crypto.FieldCipher((KEY_A,))
        people = conn.execute("select id, email_encrypted, note from raw.people order by id").fetchall()
        assert [(i, new_only.decrypt(e), n) for i, e, n in people] == [
            (1, "anna@shop.io", "a"),
            (2, "bob@shop.io", "b"),
            (3, None, "c"),
        ]
        traits = conn.execute("select traits from raw.web_events order by message_id").fetchall()
        assert new_only.decrypt(traits[0][0]["email_encrypted"]) == "carl@shop.io" and traits[0][0]["x"] == 1
        assert traits[1][0] == {"x": 2}
        # a rerun (say after a crash) has nothing left to do
        assert set(field_crypto.rotate_stored(conn, rotated).values()) == {0}


def test_rotation_stops_at_a_ciphertext_no_key_opens_leaving_that_table_as_it_was(warehouse_url: str) -> None:
    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        conn.execute("create table raw.a_people (phone_encrypted text)")
        conn.execute("create table raw.b_people (phone_encrypted text)")
        a_value = field_crypto.FieldCipher((KEY_B,)).encrypt("+15551234567")
        strangers = field_crypto.FieldCipher((Fernet.generate_key(),))
        b_values = (field_crypto.FieldCipher((KEY_B,)).encrypt("+15550000001"), strangers.encrypt("+1555"))
        conn.execute("insert into raw.a_people values (%s)", (a_value,))
        conn.execute("insert into raw.b_people values (%s), (%s)", b_values)
        with pytest.raises(field_crypto.FieldDecryptError):
            field_crypto.rotate_stored(conn, field_crypto.FieldCipher((KEY_A, KEY_B)))
        assert conn.execute("select phone_encrypted from raw.a_people").fetchone()[0] != a_value  # done
        assert {r[0] for r in conn.execute("select phone_encrypted from raw.b_people")} == set(b_values)


def test_cli_rotation_prepends_a_key_re_encrypts_and_can_drop_the_old_ones(
    warehouse_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from dagster_project import cli

    monkeypatch.delenv(field_crypto.KEYS_ENV, raising=False)
    first = field_crypto.load_cipher()
    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        conn.execute("create table raw.people (email_encrypted text)")
        conn.execute("insert into raw.people values (%s)", (first.encrypt("anna@shop.io"),))
    assert cli.main(["privacy", "rotate-field-key"]) == 0
    second = field_crypto.load_cipher()
    assert len(second.keys) == 2 and second.keys[1] == first.keys[0]
    output = capsys.readouterr().out
    assert "raw.people.email_encrypted: 1 re-encrypted" in output
    assert first.keys[0].decode() not in output and second.keys[0].decode() not in output
    assert cli.main(["privacy", "rotate-field-key", "--resume", "--drop-old-keys"]) == 0
    assert "raw.people.email_encrypted: 0 re-encrypted" in capsys.readouterr().out
    third = field_crypto.load_cipher()
    assert third.keys == second.keys[:1]
    with psycopg.connect(warehouse_url) as conn:
        stored = conn.execute("select email_encrypted from raw.people").fetchone()[0]
    assert third.decrypt(stored) == "anna@shop.io"


def test_cli_rotation_with_the_environment_setting_uses_its_first_key(
    warehouse_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from dagster_project import cli

    with psycopg.connect(warehouse_url, autocommit=True) as conn:
        conn.execute("create table raw.people (email_encrypted text)")
        old = field_crypto.FieldCipher((KEY_B,)).encrypt("a@b.io")
        conn.execute("insert into raw.people values (%s)", (old,))
    monkeypatch.setenv(field_crypto.KEYS_ENV, f"{KEY_A.decode()},{KEY_B.decode()}")
    assert cli.main(["privacy", "rotate-field-key"]) == 0
    assert not field_crypto.key_file().exists()
    with psycopg.connect(warehouse_url) as conn:
        stored = conn.execute("select email_encrypted from raw.people").fetchone()[0]
    assert Fernet(KEY_A).decrypt(stored.encode()) == b"a@b.io"
    assert cli.main(["privacy", "rotate-field-key", "--drop-old-keys"]) == 2
    assert f"{field_crypto.KEYS_ENV}: set: remove the old keys" in capsys.readouterr().out
