//! Compiles the .proto files with protox (pure Rust), so building needs no
//! system `protoc`.
use std::path::PathBuf;

const OURS: [&str; 3] = [
    "peer_discovery.proto",
    "transaction_distribution.proto",
    "peer_communication.proto",
];
const TRANSACTION_BYTES: [&str; 4] = [
    ".sorcha.peer.transaction.TransactionResponse.transaction_data",
    ".sorcha.peer.transaction.TransactionChunk.chunk_data",
    ".sorcha.peer.transaction.SubmitTransactionRequest.transaction_data",
    ".sorcha.peer.transaction.TransactionPush.transaction_data",
];
const DESIGN: [&str; 2] = ["peer_discovery.proto", "transaction_distribution.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    // Only files that exist: cargo reruns a script on every build when a
    // path it watches is missing.
    for file in OURS {
        println!("cargo:rerun-if-changed={file}");
    }
    for file in DESIGN {
        println!("cargo:rerun-if-changed=design/{file}");
    }

    let ours = protox::compile(OURS, ["."])?;
    // Discovery messages double as the REST fallback's JSON bodies, with
    // the proto field names (snake_case) and absent fields defaulted, so
    // REST and gRPC carry the same schema.
    // Transaction bytes decode as `Bytes` slices of the receive buffer and
    // are shared from there into the hot cache and the store writer: a
    // 1 MiB copy used to be copied three more times on its way in.
    let mut ours_config = tonic_prost_build::configure().out_dir(&out);
    for field in TRANSACTION_BYTES {
        ours_config = ours_config.bytes(field);
    }
    ours_config
        .message_attribute(
            ".sorcha.peer.discovery",
            "#[derive(serde::Serialize, serde::Deserialize)] #[serde(default)]",
        )
        .message_attribute(
            ".sorcha.peer.transaction.TransactionNotification",
            "#[derive(serde::Serialize, serde::Deserialize)] #[serde(default)]",
        )
        .message_attribute(
            ".sorcha.peer.transaction.NotificationAck",
            "#[derive(serde::Serialize, serde::Deserialize)] #[serde(default)]",
        )
        .compile_fds(ours)?;

    // The design document's proto text, verbatim, compiled into a separate
    // module: the compatibility tests drive our server with this client.
    let design_out = out.join("design");
    std::fs::create_dir_all(&design_out)?;
    let design = protox::compile(DESIGN, ["design"])?;
    tonic_prost_build::configure()
        .build_server(false)
        .out_dir(&design_out)
        .compile_fds(design)?;
    Ok(())
}
