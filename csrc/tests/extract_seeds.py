"""Write the conformance corpus (tests/conformance/cases/) as seed files for the C checks.

Theory of operation
-------------------
tests/conformance/corpus.py already turns the corpus text into `Case` objects (bytes plus limits);
this script only re-encodes each case's input in the binary seed format of csrc/tests/checks.h, one
file per case, under OUT/request, OUT/chunked, OUT/uwsgi and OUT/serialize. test_guard runs every property
check over those files (`--seeds OUT`) and the libFuzzer targets start from them. Expected results
are not carried over: the conformance tests check those, here the C core must merely agree with
itself under every split and stay inside its buffers.

Serializer cases whose arguments cannot reach the C call at all (non-str values, text that is not
latin-1, an unknown `connection`) are skipped: the Python layer rejects them before C sees them.

    python3 csrc/tests/extract_seeds.py OUT
"""

from __future__ import annotations

import pathlib
import struct
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "conformance")]

import corpus  # noqa: E402  (tests/conformance/corpus.py)
from fastwsgi.parser import Limits  # noqa: E402

# checks.h seed format: cfg byte = allow_bare_lf | allow_missing_host << 1 | preset << 2
PRESET_DEFAULT, PRESET_CUSTOM = 0, 3
RESP_CHUNKED, RESP_CLOSE, RESP_KEEP_ALIVE = 0x1, 0x2, 0x4
CONNECTION_FLAGS = {None: 0, "close": RESP_CLOSE, "keep-alive": RESP_KEEP_ALIVE}


def encode_stream(limits: Limits, data: bytes) -> bytes:
    flags = int(limits.allow_bare_lf) | int(limits.allow_missing_host) << 1
    sizes = (limits.max_request_line, limits.max_header_line, limits.max_header_count,
             limits.max_head_size, limits.max_chunk_line)
    split = struct.pack("<H", (len(data) // 2) & 0xFFFF)
    if sizes == (Limits().max_request_line, Limits().max_header_line, Limits().max_header_count,
                 Limits().max_head_size, Limits().max_chunk_line):
        return bytes([flags | PRESET_DEFAULT << 2]) + split + data
    return bytes([flags | PRESET_CUSTOM << 2]) + split + struct.pack("<5I", *sizes) + data


def encode_serialize(args: dict) -> bytes | None:
    """The C call's arguments for a serializer case, or None when C never sees them."""
    status, headers, date, server = args["status"], args["headers"], args["date"], args["server"]
    try:
        texts = [status, date, server or ""] + [part for pair in headers for part in pair]
        if not all(isinstance(t, str) for t in texts) or any(len(pair) != 2 for pair in headers):
            return None
        flags = CONNECTION_FLAGS[args["connection"]] | (RESP_CHUNKED if args["chunked"] else 0)
        status_b, date_b, server_b = (t.encode("latin-1") for t in (status, date, server or ""))
        fields = "\0".join(name + "\0" + value for name, value in headers).encode("latin-1")
    except (KeyError, TypeError, UnicodeEncodeError):
        return None
    if len(headers) > 255 or max(len(status_b), len(date_b), len(server_b)) > 0xFFFF:
        return None
    head = struct.pack("<BHB", flags, 0, len(headers))
    sized = b"".join(struct.pack("<H", len(b)) + b for b in (status_b, date_b, server_b))
    return head + sized + fields


def main(out: pathlib.Path) -> int:
    written = 0
    for kind, folder in (("head", "request"), ("chunked", "chunked"), ("uwsgi", "uwsgi"),
                         ("serialize", "serialize")):
        try:
            cases = corpus.load(kind)
        except corpus.CorpusError as exc:
            if "no " in str(exc) and "cases found" in str(exc):
                print(f"extract_seeds: no {kind} cases yet")
                continue
            raise
        target = out / folder
        target.mkdir(parents=True, exist_ok=True)
        for case in cases:
            if kind == "serialize":
                seed = encode_serialize(case.expected)
                if seed is None:
                    continue
            else:
                seed = encode_stream(case.limits, case.data)
            name = case.file.rsplit("/", 1)[-1].removesuffix(".txt") + "--" + case.name
            (target / name).write_bytes(seed)
            written += 1
    print(f"extract_seeds: {written} seed files under {out}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(pathlib.Path(sys.argv[1])))
