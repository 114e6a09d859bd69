"""The signer a delivery run keys once per endpoint gives exactly the signatures of the
one-shot functions."""

import hashlib
import hmac

from webhooks import signing


def test_the_keyed_signer_signs_as_the_one_shot_functions_for_every_kind_of_secret():
    generated, chosen = signing.secret_generate(), "a client chosen secret of 32 bytes!"
    body = b'{"data":{"n":1},"event_type":"trade.closed","id":"msg_1"}'
    signer = signing.Signer([generated, chosen])  # during a rotation: newest first
    for n in range(2):  # a second message from the same keyed signer starts afresh
        msg_id = f"msg_{n}"
        headers = signer.headers(
            msg_id=msg_id, delivery_id=msg_id, event_type="trade.closed", timestamp=1700000000 + n, body=body
        )
        assert headers["webhook-signature"] == " ".join(
            signing.standard_signature(s, msg_id=msg_id, timestamp=1700000000 + n, body=body)
            for s in (generated, chosen)
        )
        assert (
            headers["x-webhook-signature"] == "sha256=" + hmac.new(generated.encode(), body, hashlib.sha256).hexdigest()
        )
        assert headers == signing.signed_headers(
            secrets_newest_first=[generated, chosen],
            msg_id=msg_id,
            delivery_id=msg_id,
            event_type="trade.closed",
            timestamp=1700000000 + n,
            body=body,
        )
