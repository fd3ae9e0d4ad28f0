//! Generates the ONNX protobuf types from the vendored `proto/onnx.proto`: `protox` compiles the
//! schema in Rust and `prost-build` writes the types, so no system `protoc` is needed.

fn main() {
    println!("cargo:rerun-if-changed=proto/onnx.proto");
    let descriptors = match protox::compile(["proto/onnx.proto"], ["proto"]) {
        Ok(d) => d,
        Err(e) => panic!("proto/onnx.proto does not compile: {e}"),
    };
    if let Err(e) = prost_build::Config::new().compile_fds(descriptors) {
        panic!("generating the ONNX types failed: {e}");
    }
}
