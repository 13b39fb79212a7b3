//! A migration: its plan and status as plain values (`plan`, `request`,
//! `status`), the validation `start` runs before it answers (`prepare`),
//! and the Migration actor that carries it out (`run`).

pub mod content;
pub mod databases;
pub mod plan;
pub mod prepare;
pub mod request;
pub mod run;
pub mod status;

/// The `start` request of a packet with this selection (and optional
/// elements before it), for tests of the rules that read requests.
#[cfg(test)]
pub(crate) fn start_request(extra: &str, selection: &str) -> crate::rpc::packet::StartRequest {
    use crate::rpc::packet::{decode, Operation, Operator};
    let body = format!(
        "<packet><migration><start><host>192.0.2.1</host><login>root</login><password>x</password>\
         <destination-host-directory/>{extra}<selected-objects>{selection}</selected-objects></start></migration></packet>"
    );
    let packet = decode(body.as_bytes()).expect("test packet is valid");
    let Operator::Migration(ops) = &packet.operators[0];
    match &ops[0] {
        Operation::Start(s) => (**s).clone(),
        other => panic!("not a start: {other:?}"),
    }
}
