"""Build wire-compatible views of OTLP messages: published descriptors copied into our own package.

The plumbing that trace_view.py and logs_view.py share. A view file is a published
``.proto`` descriptor renamed into a package of ours, so changing one of its fields
(``attributes_as_map``, or a field's type) cannot touch the published message; the
request file keeps only the export request message of the published service file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_ANY_VALUE = ".opentelemetry.proto.common.v1.AnyValue"
Field = descriptor_pb2.FieldDescriptorProto
FileProto = descriptor_pb2.FileDescriptorProto


def copy_file(published, name: str, package: str) -> FileProto:
    """``published`` (a module's ``DESCRIPTOR``) renamed into ``package``: every field that refers to a
    message of the published package refers to our copy instead (nested messages' fields too)."""
    source, view = "." + published.package + ".", "." + package + "."
    out = FileProto()
    published.CopyToProto(out)
    out.name, out.package = name, package
    out.ClearField("options")
    for message in out.message_type:
        for field in [*message.field, *(f for nested in message.nested_type for f in nested.field)]:
            if field.type_name.startswith(source):
                field.type_name = view + field.type_name[len(source):]
    return out


def message(file: FileProto, name: str) -> descriptor_pb2.DescriptorProto:
    return next(m for m in file.message_type if m.name == name)


def attributes_as_map(file: FileProto, message_name: str) -> None:
    """Declare ``message_name.attributes`` (``repeated KeyValue``) as ``map<string, AnyValue>``: the same
    wire form (a map entry is a message with the key in field 1 and the value in field 2, as a KeyValue)."""
    target = message(file, message_name)
    entry = target.nested_type.add(name="AttributesEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=Field.TYPE_STRING, label=Field.LABEL_OPTIONAL, json_name="key")
    entry.field.add(name="value", number=2, type=Field.TYPE_MESSAGE, label=Field.LABEL_OPTIONAL,
                    type_name=_ANY_VALUE, json_name="value")
    attributes = next(f for f in target.field if f.name == "attributes")
    attributes.type_name = f".{file.package}.{message_name}.AttributesEntry"


def request_file(published_service, name: str, dependency: FileProto, request: str) -> FileProto:
    """The published service file reduced to its ``request`` message, in ``dependency``'s package and
    referring to ``dependency``'s messages."""
    out = FileProto()
    published_service.CopyToProto(out)
    out.name, out.package = name, dependency.package
    out.ClearField("options")
    out.ClearField("service")
    out.dependency[:] = [dependency.name]
    kept = message(out, request)
    del out.message_type[:]
    out.message_type.add().CopyFrom(kept)
    for field in out.message_type[0].field:
        field.type_name = f".{dependency.package}." + field.type_name.rsplit(".", 1)[1]
    return out


def request_class(package: str, request: str, files: Callable[[], Iterable[FileProto]]) -> type:
    """The message class of ``package.request``, adding ``files()`` to the default pool the first time."""
    pool = descriptor_pool.Default()
    try:
        found = pool.FindMessageTypeByName(f"{package}.{request}")
    except KeyError:
        for file in files():
            pool.Add(file)
        found = pool.FindMessageTypeByName(f"{package}.{request}")
    return message_factory.GetMessageClass(found)
