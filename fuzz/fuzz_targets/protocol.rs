//! Fuzzes the PostgreSQL protocol handler: each input is sent as the raw bytes of one client
//! connection to a server over an in-memory database. Whatever the bytes, the connection may fail but
//! the server must not: after every input a well-formed client still connects and runs a query.
//!
//! Inputs starting with a valid startup message reach the query protocols; the seed corpus can hold
//! recorded sessions (e.g. psql's) to start from.

#![no_main]

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::runtime::Runtime;

/// The server every input talks to, started once per fuzzing process.
struct Target {
    runtime: Runtime,
    address: SocketAddr,
}

fn target() -> &'static Target {
    static TARGET: OnceLock<Target> = OnceLock::new();
    TARGET.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        let cluster = qubedb::Cluster::open_in_memory().expect("an in-memory cluster");
        let options = qubedb_server::ServerOptions::new("127.0.0.1:0".parse().expect("address"));
        let server = runtime
            .block_on(qubedb_server::Server::bind(cluster, options))
            .expect("bind");
        let address = server.local_address().expect("address");
        runtime.spawn(server.run(std::future::pending()));
        Target { runtime, address }
    })
}

/// A minimal well-formed session: startup as `qubedb`, then `SELECT 1`, then Terminate. True when the
/// server answered the query.
async fn healthy(address: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect(address).await else {
        return false;
    };
    let mut startup = Vec::new();
    let parameters = b"user\0qubedb\0database\0qubedb\0\0";
    startup.extend_from_slice(&((8 + parameters.len()) as i32).to_be_bytes());
    startup.extend_from_slice(&196_608i32.to_be_bytes());
    startup.extend_from_slice(parameters);
    let query = b"SELECT 1\0";
    startup.push(b'Q');
    startup.extend_from_slice(&((4 + query.len()) as i32).to_be_bytes());
    startup.extend_from_slice(query);
    startup.extend_from_slice(&[b'X', 0, 0, 0, 4]);
    if stream.write_all(&startup).await.is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    // A DataRow ('D') carrying "1" means the query ran.
    read.is_ok() && answer.windows(3).any(|window| window == [0, 1, b'1'])
}

fuzz_target!(|data: &[u8]| {
    let target = target();
    target.runtime.block_on(async {
        if let Ok(mut stream) = TcpStream::connect(target.address).await {
            let _ = stream.write_all(data).await;
            let _ = stream.shutdown().await;
            let mut sink = Vec::new();
            let _ =
                tokio::time::timeout(Duration::from_secs(2), stream.read_to_end(&mut sink)).await;
        }
        assert!(
            healthy(target.address).await,
            "the server stopped answering after {} bytes of input",
            data.len()
        );
    });
});
