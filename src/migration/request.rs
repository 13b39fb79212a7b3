//! Rules of `start` that the packet alone decides, checked before anything
//! else is looked at (PROTOCOL.md §3): what hostmig does not support, and
//! mappings that contradict themselves.

use crate::rpc::code::{Code, RpcError};
use crate::rpc::packet::{
    DbType, IpType, MappedClient, MappedDomain, MappedIp, Selection, StartRequest, SystemType,
};

/// The first rule the request breaks, as the error `start` answers with.
pub fn check(req: &StartRequest) -> Result<(), RpcError> {
    if req.system_type == SystemType::Windows {
        return Err(RpcError::new(
            Code::Unsupported,
            "Unable to start migration: Windows sources are not supported; hostmig migrates from Unix servers only",
        ));
    }
    let (clients, domains): (Vec<&MappedClient>, Vec<&MappedDomain>) = match &req.selection {
        Selection::Resellers(_) => {
            return Err(RpcError::new(
                Code::Unsupported,
                "Unable to start migration: resellers are not supported; migrate their clients with migrate-clients",
            ))
        }
        Selection::Clients {
            target_owner,
            clients,
        } => {
            if target_owner != "admin" {
                return Err(RpcError::new(
                    Code::OperationFailed,
                    format!(
                        "Unable to start migration: clients can only be migrated to admin, not to \"{target_owner}\""
                    ),
                ));
            }
            let domains = clients.iter().flat_map(|c| &c.domains).collect();
            (clients.iter().collect(), domains)
        }
        Selection::Domains(groups) => (Vec::new(), groups.iter().flat_map(|g| &g.domains).collect()),
    };
    let ips = clients
        .iter()
        .flat_map(|c| &c.ips)
        .chain(domains.iter().filter_map(|d| d.ip.as_ref()));
    for ip in ips {
        check_ip(ip)?;
    }
    for server in domains.iter().flat_map(|d| &d.db_servers) {
        for spec in [&server.old, &server.new] {
            if spec.kind != DbType::Mysql {
                return Err(RpcError::new(
                    Code::WrongDbType,
                    format!(
                        "Unable to start migration: database server {}:{} is of type {}; only mysql databases are migrated",
                        spec.host,
                        spec.port,
                        db_type_name(spec.kind)
                    ),
                ));
            }
        }
    }
    Ok(())
}

fn check_ip(ip: &MappedIp) -> Result<(), RpcError> {
    if ip.old.kind != ip.new.kind {
        return Err(RpcError::new(
            Code::InvalidValue,
            format!(
                "cannot map {} IP {} to {} IP {}",
                ip_type_name(ip.old.kind),
                ip.old.address,
                ip_type_name(ip.new.kind),
                ip.new.address
            ),
        ));
    }
    Ok(())
}

fn ip_type_name(kind: IpType) -> &'static str {
    match kind {
        IpType::Shared => "shared",
        IpType::Exclusive => "exclusive",
    }
}

pub(super) fn db_type_name(kind: DbType) -> &'static str {
    match kind {
        DbType::Mysql => "mysql",
        DbType::Postgresql => "postgresql",
        DbType::Mssql => "mssql",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start_with(extra: &str, sel: &str) -> StartRequest {
        crate::migration::start_request(extra, sel)
    }

    fn check_case(extra: &str, sel: &str, expected: Result<(), (u32, &str)>) {
        let got = check(&start_with(extra, sel)).map_err(|e| (e.code.number(), e.text));
        let expected = expected.map_err(|(c, t)| (c, t.to_owned()));
        assert_eq!(got, expected, "selection: {sel}");
    }

    const IP: &str = "<ip><old><ip-type>shared</ip-type><ip-address>192.0.2.10</ip-address></old>\
                      <new><ip-type>exclusive</ip-type><ip-address>203.0.113.5</ip-address></new></ip>";

    #[test]
    fn packet_rules() {
        let dom = "<migrate-domains><target-owner>admin</target-owner><domain><name>a.example</name></domain></migrate-domains>";
        check_case("", dom, Ok(()));
        check_case("<system-type>windows</system-type>", dom, Err((1017, "Unable to start migration: Windows sources are not supported; hostmig migrates from Unix servers only")));
        check_case("", "<migrate-resellers><reseller><name>r</name></reseller></migrate-resellers>",
            Err((1017, "Unable to start migration: resellers are not supported; migrate their clients with migrate-clients")));
        check_case("", "<migrate-clients><target-owner>neo</target-owner><client><name>jdoe</name></client></migrate-clients>",
            Err((1023, "Unable to start migration: clients can only be migrated to admin, not to \"neo\"")));
        check_case("", &format!("<migrate-clients><target-owner>admin</target-owner><client><name>jdoe</name>{IP}</client></migrate-clients>"),
            Err((1019, "cannot map shared IP 192.0.2.10 to exclusive IP 203.0.113.5")));
        check_case("", &format!("<migrate-webspaces><target-owner>admin</target-owner><webspace><name>a.example</name>{IP}</webspace></migrate-webspaces>"),
            Err((1019, "cannot map shared IP 192.0.2.10 to exclusive IP 203.0.113.5")));
        check_case("", "<migrate-domains><target-owner>admin</target-owner><domain><name>a.example</name>\
            <db-server><old><host>localhost</host><port>5432</port><type>postgresql</type></old>\
            <new><host>localhost</host><port>5432</port><type>postgresql</type></new></db-server></domain></migrate-domains>",
            Err((14008, "Unable to start migration: database server localhost:5432 is of type postgresql; only mysql databases are migrated")));
    }
}
