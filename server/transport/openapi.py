"""OpenAPI 3 for the HTTP/JSON gateway, generated from the proto descriptors (never written by hand).

Schemas follow protobuf's canonical JSON mapping: lowerCamelCase names (the parser also takes the proto
names), 64-bit integers as decimal strings, enums by name, bytes as base64.
"""

from __future__ import annotations

from typing import Any

from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from graphfuse.server.transport.status import HTTP_STATUS

_SCALARS: dict[int, dict[str, Any]] = {
    FieldDescriptor.TYPE_DOUBLE: {"type": "number", "format": "double"},
    FieldDescriptor.TYPE_FLOAT: {"type": "number", "format": "float"},
    FieldDescriptor.TYPE_INT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_SINT32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_SFIXED32: {"type": "integer", "format": "int32"},
    FieldDescriptor.TYPE_UINT32: {"type": "integer", "format": "int64", "minimum": 0, "maximum": 2**32 - 1},
    FieldDescriptor.TYPE_FIXED32: {"type": "integer", "format": "int64", "minimum": 0, "maximum": 2**32 - 1},
    FieldDescriptor.TYPE_INT64: {"type": "string", "format": "int64", "pattern": "^-?[0-9]+$"},
    FieldDescriptor.TYPE_SINT64: {"type": "string", "format": "int64", "pattern": "^-?[0-9]+$"},
    FieldDescriptor.TYPE_SFIXED64: {"type": "string", "format": "int64", "pattern": "^-?[0-9]+$"},
    FieldDescriptor.TYPE_UINT64: {"type": "string", "format": "uint64", "pattern": "^[0-9]+$"},
    FieldDescriptor.TYPE_FIXED64: {"type": "string", "format": "uint64", "pattern": "^[0-9]+$"},
    FieldDescriptor.TYPE_BOOL: {"type": "boolean"},
    FieldDescriptor.TYPE_STRING: {"type": "string"},
    FieldDescriptor.TYPE_BYTES: {"type": "string", "format": "byte"},
}

STATUS_SCHEMA = {
    "type": "object",
    "description": "An error: the gRPC status code (number and name) and a message naming the field.",
    "properties": {
        "code": {"type": "integer", "description": "gRPC status code number"},
        "status": {"type": "string", "description": "gRPC status code name, e.g. NOT_FOUND"},
        "message": {"type": "string"},
    },
    "required": ["code", "status", "message"],
}


class _Schemas:
    """Collects a schema per message and enum reachable from the routes' messages."""

    def __init__(self) -> None:
        self.components: dict[str, dict[str, Any]] = {}

    def ref(self, descriptor: Descriptor | EnumDescriptor) -> dict[str, str]:
        name = descriptor.full_name
        if name not in self.components:
            self.components[name] = {}  # placeholder: recursive messages end here
            if isinstance(descriptor, EnumDescriptor):
                self.components[name] = {"type": "string", "enum": [v.name for v in descriptor.values]}
            else:
                self.components[name] = self._message(descriptor)
        return {"$ref": f"#/components/schemas/{name}"}

    def _message(self, descriptor: Descriptor) -> dict[str, Any]:
        properties = {field.json_name: self._field(field) for field in descriptor.fields}
        return {"type": "object", "properties": properties, "additionalProperties": False}

    def _field(self, field: FieldDescriptor) -> dict[str, Any]:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value = field.message_type.fields_by_name["value"]
            return {"type": "object", "additionalProperties": self._single(value)}
        single = self._single(field)
        if field.is_repeated:
            return {"type": "array", "items": single}
        return single

    def _single(self, field: FieldDescriptor) -> dict[str, Any]:
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            return self.ref(field.message_type)
        if field.type == FieldDescriptor.TYPE_ENUM:
            return self.ref(field.enum_type)
        return dict(_SCALARS[field.type])


def openapi_document(routes: list, title: str, version: str) -> dict[str, Any]:
    """The OpenAPI 3.0 document of ``routes`` (graphfuse.server.transport.gateway.Route: method, path, rpc
    descriptor)."""
    schemas = _Schemas()
    error_responses = {
        str(status): {
            "description": ", ".join(sorted(code.name for code, s in HTTP_STATUS.items() if s == status)),
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Status"}}},
        }
        for status in sorted(set(HTTP_STATUS.values()))
    }
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        rpc = route.rpc
        operation: dict[str, Any] = {
            "operationId": rpc.name,
            "summary": f"{rpc.containing_service.full_name}.{rpc.name}",
            "responses": {
                "200": {
                    "description": rpc.output_type.full_name,
                    "content": {"application/json": {"schema": schemas.ref(rpc.output_type)}},
                },
                **error_responses,
            },
            "parameters": [
                {
                    "name": "grpc-timeout",
                    "in": "header",
                    "required": False,
                    "description": "Deadline, as gRPC writes it: an integer and a unit (H, M, S, m, u, n), "
                    "e.g. 500m",
                    "schema": {"type": "string", "pattern": "^[0-9]{1,8}[HMSmun]$"},
                },
            ],
        }
        if rpc.client_streaming:
            operation["description"] = (
                f"The streaming RPC one message at a time: the body is one {rpc.input_type.name} (fields in "
                f"the path come from the path), the answer its {rpc.output_type.name}."
            )
        for name in route.path_fields:
            operation["parameters"].append(
                {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            )
        if route.method == "POST":
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": schemas.ref(rpc.input_type)}},
            }
        paths.setdefault(route.path, {})[route.method.lower()] = operation
    components = dict(sorted(schemas.components.items()))
    components["Status"] = STATUS_SCHEMA
    return {
        "openapi": "3.0.3",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{}, {"bearer": []}],
    }
