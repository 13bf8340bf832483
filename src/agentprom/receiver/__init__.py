"""OTLP receivers: decoding (protobuf and OTLP JSON) and the gRPC and HTTP servers."""
