"""The start-up stand-ins for py_ecc's BLS modules: never loaded by V3 keystores and signing,
the real code (same results) for anything that does use BLS, nothing replaced once loaded."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

PAIRING = "py_ecc.optimized_bls12_381.optimized_pairing"


def _run(code: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def test_v3_keystores_and_signing_never_load_the_pairing_tables() -> None:
    got = _run(
        f"""
        import json, sys
        import visdm
        from eth_account import Account
        from eth_account.messages import encode_defunct
        acct = Account.from_key(b"\\x01" * 32)
        keystore = Account.encrypt(acct.key, "pw", kdf="scrypt", iterations=2)
        key = Account.decrypt(keystore, "pw")
        signed = Account.sign_message(encode_defunct(text="hi"), acct.key)
        print(json.dumps({{
            "same_key": key == acct.key,
            "recovered": Account.recover_message(encode_defunct(text="hi"),
                                                 signature=signed.signature) == acct.address,
            "pairing_loaded": {PAIRING!r} in sys.modules,
        }}))
        """
    )
    assert got == {"same_key": True, "recovered": True, "pairing_loaded": False}


def test_the_stand_in_constant_is_the_curve_order_py_ecc_computes() -> None:
    got = _run(
        """
        import json
        from visdm._deferred_imports import BLS12_381_CURVE_ORDER, is_deferred, real_module
        before = is_deferred("py_ecc.bls12_381")
        real = real_module("py_ecc.bls12_381").curve_order
        print(json.dumps({"before": before, "after": is_deferred("py_ecc.bls12_381"),
                          "equal": real == BLS12_381_CURVE_ORDER}))
        """
    )
    assert got == {"before": True, "after": False, "equal": True}


def test_code_that_uses_bls_gets_the_real_module_and_the_same_results() -> None:
    program = """
        import json, sys
        {prelude}
        from eth_keyfile import create_keyfile_json
        v4 = create_keyfile_json(b"\\x07" * 32, b"pw", version=4, kdf="pbkdf2", iterations=2)
        from py_ecc.bls import G2Basic
        import py_ecc.bls.hash
        sig = G2Basic.Sign(7, b"msg")
        print(json.dumps({{"pubkey": v4["pubkey"], "sig": sig.hex(),
                          "real": type(sys.modules["py_ecc.bls"]).__name__ == "module"}}))
        """
    deferred = _run(program.format(prelude="import visdm"))
    plain = _run(program.format(prelude=""))
    assert deferred == plain
    assert deferred["real"] is True


def test_nothing_is_replaced_when_bls_was_loaded_first() -> None:
    got = _run(
        """
        import json
        import py_ecc.bls
        first = py_ecc.bls
        import visdm, sys
        from visdm._deferred_imports import is_deferred
        print(json.dumps({"same": sys.modules["py_ecc.bls"] is first,
                          "deferred": is_deferred("py_ecc.bls")}))
        """
    )
    assert got == {"same": True, "deferred": False}


def test_registering_the_web_command_does_not_load_fastapi() -> None:
    got = _run(
        """
        import json, sys
        import visdm.web._cli
        loaded_early = "fastapi" in sys.modules
        from visdm.web import create_app
        print(json.dumps({"early": loaded_early, "later": "fastapi" in sys.modules,
                          "callable": callable(create_app)}))
        """
    )
    assert got == {"early": False, "later": True, "callable": True}
