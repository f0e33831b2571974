//! Sockets: listening on every interface (IPv4 and IPv6), finding the addresses another
//! machine can use to join, parsing `HOST[:PORT]`, and connecting with a time limit.
//!
//! Owns the translation of operating-system errors into messages that say what to do
//! ("port 9999 is already in use ..."). It never reads or writes chat data.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use super::ChatError;
use crate::protocol::DEFAULT_PORT;

/// How long `join` waits for the host to answer.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Open the listening sockets: `bind` alone when given, otherwise `0.0.0.0` and `[::]`
/// (the IPv6 one only where the machine has IPv6). Port 0 picks one free port for both.
pub fn listen(bind: Option<IpAddr>, port: u16) -> Result<Vec<TcpListener>, ChatError> {
    if let Some(ip) = bind {
        return Ok(vec![bind_one(SocketAddr::new(ip, port))?]);
    }
    let v4 = bind_one(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port))?;
    let port = v4.local_addr().map(|a| a.port()).unwrap_or(port);
    let mut out = vec![v4];
    // No IPv6 on this machine is not an error: IPv4 still works.
    if let Ok(v6) = bind_one(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port)) {
        out.push(v6);
    }
    Ok(out)
}

fn bind_one(addr: SocketAddr) -> Result<TcpListener, ChatError> {
    let fail = |source: io::Error| ChatError::Listen { addr, source };
    let socket =
        Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).map_err(fail)?;
    if addr.is_ipv6() {
        // Keep IPv6 to itself so the IPv4 socket can share the port on every system.
        socket.set_only_v6(true).map_err(fail)?;
    }
    #[cfg(not(windows))]
    socket.set_reuse_address(true).map_err(fail)?;
    socket.bind(&addr.into()).map_err(fail)?;
    socket.listen(8).map_err(fail)?;
    Ok(socket.into())
}

/// Addresses of this machine that another machine on the network can reach: IPv4 first,
/// then IPv6 with global or unique-local scope. Loopback and link-local are left out.
pub fn lan_addresses() -> Vec<IpAddr> {
    let Ok(ifaces) = if_addrs::get_if_addrs() else { return Vec::new() };
    let mut v4: Vec<IpAddr> = Vec::new();
    let mut v6: Vec<IpAddr> = Vec::new();
    for iface in ifaces {
        if iface.is_loopback() || iface.is_link_local() {
            continue;
        }
        match iface.ip() {
            ip @ IpAddr::V4(_) if !v4.contains(&ip) => v4.push(ip),
            ip @ IpAddr::V6(a) if !v6.contains(&ip) && (a.segments()[0] & 0xffc0) != 0xfe80 => {
                v6.push(ip)
            }
            _ => {}
        }
    }
    v4.extend(v6);
    v4
}

/// `HOST:PORT` as a user types it, with brackets around IPv6 addresses.
pub fn join_target(ip: IpAddr, port: u16) -> String {
    let addr = SocketAddr::new(ip, port);
    if port == DEFAULT_PORT { strip_default_port(&addr.to_string()) } else { addr.to_string() }
}

fn strip_default_port(s: &str) -> String {
    let s = s.strip_suffix(&format!(":{DEFAULT_PORT}")).unwrap_or(s);
    s.trim_start_matches('[').trim_end_matches(']').to_owned()
}

/// Split `HOST`, `HOST:PORT`, `[V6]`, `[V6]:PORT` or a bare IPv6 address into host and port.
pub fn parse_target(target: &str) -> Result<(String, u16), String> {
    let bad_port =
        |p: &str| format!("`{p}` in `{target}` is not a port: use a number from 1 to 65535");
    let t = target.trim();
    if t.is_empty() {
        return Err("the host to join is empty: give a name or address, e.g. 192.168.1.20".into());
    }
    if let Some(rest) = t.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("`{target}` has `[` without `]`: write [::1]:9999"))?;
        let port = match after {
            "" => DEFAULT_PORT,
            p => p.strip_prefix(':').and_then(|p| p.parse().ok()).ok_or_else(|| bad_port(p))?,
        };
        return Ok((host.to_owned(), port));
    }
    if t.parse::<Ipv6Addr>().is_ok() {
        return Ok((t.to_owned(), DEFAULT_PORT));
    }
    match t.rsplit_once(':') {
        Some((host, p)) => {
            let port: u16 = p.parse().map_err(|_| bad_port(p))?;
            if port == 0 {
                return Err(bad_port(p));
            }
            Ok((host.to_owned(), port))
        }
        None => Ok((t.to_owned(), DEFAULT_PORT)),
    }
}

/// Resolve and connect, trying each address of the host in turn.
pub fn connect(host: &str, port: u16, timeout: Duration) -> Result<TcpStream, ChatError> {
    let target = join_target_display(host, port);
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|source| ChatError::Resolve { target: target.clone(), source })?
        .collect();
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(ChatError::Connect {
        target,
        source: last.unwrap_or_else(|| io::Error::other("the name has no addresses")),
    })
}

fn join_target_display(host: &str, port: u16) -> String {
    if host.contains(':') { format!("[{host}]:{port}") } else { format!("{host}:{port}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        assert_eq!(parse_target("10.0.0.5").unwrap(), ("10.0.0.5".into(), 9999));
        assert_eq!(parse_target("10.0.0.5:1234").unwrap(), ("10.0.0.5".into(), 1234));
        assert_eq!(parse_target("[::1]:9999").unwrap(), ("::1".into(), 9999));
        assert_eq!(parse_target("[::1]").unwrap(), ("::1".into(), 9999));
        assert_eq!(parse_target("::1").unwrap(), ("::1".into(), 9999));
        assert_eq!(parse_target("fe80::1").unwrap(), ("fe80::1".into(), 9999));
        assert_eq!(parse_target("localhost:80").unwrap(), ("localhost".into(), 80));
        assert!(parse_target("host:abc").is_err());
        assert!(parse_target("host:0").is_err());
        assert!(parse_target("host:70000").is_err());
        assert!(parse_target("[::1").is_err());
        assert!(parse_target("").is_err());
    }

    #[test]
    fn join_lines_are_what_a_user_types() {
        assert_eq!(join_target("192.168.1.2".parse().unwrap(), 9999), "192.168.1.2");
        assert_eq!(join_target("192.168.1.2".parse().unwrap(), 5000), "192.168.1.2:5000");
        assert_eq!(join_target("fd00::2".parse().unwrap(), 5000), "[fd00::2]:5000");
        assert_eq!(join_target("fd00::2".parse().unwrap(), 9999), "fd00::2");
    }

    #[test]
    fn listening_twice_on_one_port_fails_clearly() {
        let first = listen(Some("127.0.0.1".parse().unwrap()), 0).unwrap();
        let port = first[0].local_addr().unwrap().port();
        let err = listen(Some("127.0.0.1".parse().unwrap()), port).unwrap_err();
        assert!(err.to_string().contains("already in use"), "{err}");
    }
}
