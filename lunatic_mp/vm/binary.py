"""Exported function signatures, read from a module's binary.

wasmtime's C API aborts the process when asked for the kind of a ``v128`` value type, so the
signatures that spawn checks parameters against are read from the type, import, function and
export sections here instead. Signatures use one letter a value: i, I, f, F (i32, i64, f32,
f64), v (v128) and r (any reference type, which spawn cannot pass).
"""

from __future__ import annotations

_VALUE_TYPES = {0x7F: "i", 0x7E: "I", 0x7D: "f", 0x7C: "F", 0x7B: "v"}
_REF_WITH_HEAP_TYPE = (0x63, 0x64)  # (ref null ht), (ref ht) of the GC proposal
_FUNC_TYPE, _REC_GROUP, _SUB, _SUB_FINAL = 0x60, 0x4E, 0x50, 0x4F
_TYPE_SECTION, _IMPORT_SECTION, _FUNCTION_SECTION, _EXPORT_SECTION = 1, 2, 3, 7
_IMPORT_FUNC, _EXPORT_FUNC = 0x00, 0x00


class _Reader:
    def __init__(self, data: bytes, position: int = 0, end: int | None = None) -> None:
        self.data, self.position, self.end = data, position, len(data) if end is None else end

    def byte(self) -> int:
        if self.position >= self.end:
            raise ValueError("unexpected end of section")
        value = self.data[self.position]
        self.position += 1
        return value

    def u32(self) -> int:
        result = shift = 0
        while True:
            byte = self.byte()
            result |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return result
            shift += 7

    def s33(self) -> None:
        while self.byte() & 0x80:
            pass

    def name(self) -> str:
        length = self.u32()
        start, self.position = self.position, self.position + length
        return self.data[start : self.position].decode("utf-8", "replace")

    def value_type(self) -> str:
        code = self.byte()
        if code in _REF_WITH_HEAP_TYPE:
            self.s33()
        return _VALUE_TYPES.get(code, "r")

    def limits(self) -> None:
        flags = self.byte()
        self.u32()
        if flags & 0x01:
            self.u32()


def export_signatures(data: bytes) -> dict[str, tuple[str, str]]:
    """Exported functions and their (params, results); best effort past the MVP's type forms."""
    types: list[tuple[str, str] | None] = []
    functions: list[int] = []
    exports: dict[str, int] = {}
    reader = _Reader(data, 8)
    while reader.position < len(data):
        section = reader.byte()
        size = reader.u32()
        body = _Reader(data, reader.position, reader.position + size)
        reader.position += size
        if section == _TYPE_SECTION:
            types = _types(body)
        elif section == _IMPORT_SECTION:
            functions.extend(_imported_function_types(body))
        elif section == _FUNCTION_SECTION:
            functions.extend(body.u32() for _ in range(body.u32()))
        elif section == _EXPORT_SECTION:
            for _ in range(body.u32()):
                name, kind, index = body.name(), body.byte(), body.u32()
                if kind == _EXPORT_FUNC:
                    exports[name] = index
    signatures: dict[str, tuple[str, str]] = {}
    for name, index in exports.items():
        type_index = functions[index] if index < len(functions) else -1
        signature = types[type_index] if 0 <= type_index < len(types) else None
        signatures[name] = signature or ("r", "")
    return signatures


def _types(body: _Reader) -> list[tuple[str, str] | None]:
    types: list[tuple[str, str] | None] = []
    for _ in range(body.u32()):
        form = body.byte()
        if form == _REC_GROUP or form in (_SUB, _SUB_FINAL):
            return types  # GC proposal type forms: the functions after this are not spawnable
        if form != _FUNC_TYPE:
            types.append(None)
            continue
        params = "".join(body.value_type() for _ in range(body.u32()))
        results = "".join(body.value_type() for _ in range(body.u32()))
        types.append((params, results))
    return types


def _imported_function_types(body: _Reader) -> list[int]:
    functions: list[int] = []
    for _ in range(body.u32()):
        body.name()
        body.name()
        kind = body.byte()
        if kind == _IMPORT_FUNC:
            functions.append(body.u32())
        elif kind == 0x01:  # table: reference type, limits
            body.value_type()
            body.limits()
        elif kind == 0x02:  # memory
            body.limits()
        elif kind == 0x03:  # global: value type, mutability
            body.value_type()
            body.byte()
        elif kind == 0x04:  # tag: attribute, type index
            body.byte()
            body.u32()
    return functions
