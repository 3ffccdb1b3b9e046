"""Keep credentials out of what the bridge prints (errors, logs, check messages).

A URL such as ``postgres://app:s3cret@db/prod`` becomes
``postgres://app:***@db/prod``. No Django imports here.
"""

from __future__ import annotations

import re

# scheme://user:password@: the password runs to the last "@" before a blank or a quote, so an
# unescaped "@" in it is hidden too (a path or query after the host may be hidden with it).
_USERINFO = re.compile(r"(?P<head>\b[A-Za-z][A-Za-z0-9+.-]*://[^\s'\":/@]*):[^\s'\"]*@")


def redact(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@`` replaced by ``***``."""
    return _USERINFO.sub(r"\g<head>:***@", text)
