//! Our .proto files extend the design document's only by addition: every
//! package, service, rpc, message, field (name, number, type, label) and
//! enum value of the design's text exists unchanged in ours.
use prost_types::{FileDescriptorProto, FileDescriptorSet};

fn compile(files: &[&str], dir: &str) -> FileDescriptorSet {
    let root = format!("{}/{dir}", sorcha_proto::PROTO_DIR);
    protox::compile(files, [root]).expect("protos compile")
}

fn find<'a>(set: &'a FileDescriptorSet, name: &str) -> &'a FileDescriptorProto {
    set.file
        .iter()
        .find(|f| f.name() == name)
        .unwrap_or_else(|| panic!("{name} missing"))
}

fn assert_superset(design: &FileDescriptorProto, ours: &FileDescriptorProto) {
    assert_eq!(
        design.package(),
        ours.package(),
        "package of {}",
        design.name()
    );
    for ds in &design.service {
        let os = ours
            .service
            .iter()
            .find(|s| s.name() == ds.name())
            .unwrap_or_else(|| panic!("service {} missing", ds.name()));
        for dm in &ds.method {
            let om = os
                .method
                .iter()
                .find(|m| m.name() == dm.name())
                .unwrap_or_else(|| panic!("rpc {} missing", dm.name()));
            assert_eq!(
                (
                    dm.input_type(),
                    dm.output_type(),
                    dm.client_streaming(),
                    dm.server_streaming()
                ),
                (
                    om.input_type(),
                    om.output_type(),
                    om.client_streaming(),
                    om.server_streaming()
                ),
                "rpc {}.{}",
                ds.name(),
                dm.name()
            );
        }
    }
    for dmsg in &design.message_type {
        let omsg = ours
            .message_type
            .iter()
            .find(|m| m.name() == dmsg.name())
            .unwrap_or_else(|| panic!("message {} missing", dmsg.name()));
        for df in &dmsg.field {
            let of = omsg
                .field
                .iter()
                .find(|f| f.name() == df.name())
                .unwrap_or_else(|| panic!("field {}.{} missing", dmsg.name(), df.name()));
            assert_eq!(
                (df.number(), df.r#type(), df.label(), df.type_name()),
                (of.number(), of.r#type(), of.label(), of.type_name()),
                "field {}.{}",
                dmsg.name(),
                df.name()
            );
        }
        for of in &omsg.field {
            if !dmsg.field.iter().any(|f| f.name() == of.name()) {
                assert!(
                    dmsg.field.iter().all(|f| f.number() != of.number()),
                    "added field {}.{} reuses a design field number",
                    omsg.name(),
                    of.name()
                );
            }
        }
    }
    for de in &design.enum_type {
        let oe = ours
            .enum_type
            .iter()
            .find(|e| e.name() == de.name())
            .unwrap_or_else(|| panic!("enum {} missing", de.name()));
        for dv in &de.value {
            assert!(
                oe.value
                    .iter()
                    .any(|v| v.name() == dv.name() && v.number() == dv.number()),
                "enum value {}.{} = {} missing",
                de.name(),
                dv.name(),
                dv.number()
            );
        }
    }
}

#[test]
fn our_protos_are_a_superset_of_the_design_text() {
    let files = ["peer_discovery.proto", "transaction_distribution.proto"];
    let design = compile(&files, "design");
    let ours = compile(&files, ".");
    for f in files {
        assert_superset(find(&design, f), find(&ours, f));
    }
}

#[test]
fn the_streaming_mode_has_a_bidirectional_stream_rpc() {
    let ours = compile(&["peer_communication.proto"], ".");
    let f = find(&ours, "peer_communication.proto");
    let rpc = &f.service[0]
        .method
        .iter()
        .find(|m| m.name() == "Stream")
        .expect("Stream rpc");
    assert!(rpc.client_streaming() && rpc.server_streaming());
}
