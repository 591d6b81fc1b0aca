"""The old home of the HTTP guest convention's codecs, kept for programs that import them here.

The HTTP front end lives in :mod:`lunatic_mp.serve.http`, these codecs in
:mod:`lunatic_mp.serve.http_messages`.
"""

from lunatic_mp.serve.http_messages import decode_reply, decode_request, encode_reply, encode_request

__all__ = ["decode_reply", "decode_request", "encode_reply", "encode_request"]
