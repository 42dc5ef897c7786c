//! `qubedb serve`: the PostgreSQL wire protocol (v3) over the databases of a [`qubedb::Cluster`] (a data
//! directory); each connection picks its database at startup (3D000 for an unknown one).
//!
//! The protocol itself — message framing, startup, the simple-query cycle — is the `pgwire` crate's.
//! What is ours: one [`qubedb::Session`] per connection ([`connection`]), the mapping of outcomes and
//! errors to protocol messages (row descriptions with PostgreSQL type OIDs, rows in text or binary
//! format ([`codec`]), command tags, ErrorResponse with SQLSTATE, detail, hint and position),
//! ReadyForQuery carrying the session's real transaction status, the extended query protocol's
//! statements and portals ([`extended`]), COPY in both directions ([`copy`]), and the listener: a connection limit, and a clean shutdown
//! that drops every session (rolling back open transactions) before the databases close.
//!
//! CancelRequest cancels a connection's running statement ([`cancel`]).
//!
//! Authentication (`trust` or SCRAM-SHA-256 over the data directory's roles) and TLS are in [`auth`].
//!
//! Not built yet (issue 4 continues): what psql's `\d table` needs beyond the system catalogs (see
//! `qubedb::sql::system`).

pub mod auth;
pub mod cancel;
pub mod codec;
pub mod connection;
pub mod copy;
pub mod extended;
pub mod types;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use std::collections::HashMap;

use pgwire::api::auth::sasl::SaslMechanisms;
use qubedb::Cluster;

pub use crate::auth::{AuthMethod, TlsFiles};
use tokio::net::{TcpListener, UnixListener};
use tokio::task::JoinSet;

use crate::cancel::CancelRegistry;
use crate::connection::ConnectionFactory;

/// Default PostgreSQL port of `qubedb serve` (PostgreSQL's own is 5432).
pub const DEFAULT_PG_ADDRESS: &str = "127.0.0.1:5433";

/// Default limit on concurrent connections.
pub const DEFAULT_CONNECTIONS_MAX: usize = 100;

/// Completes on Ctrl-C (SIGINT) or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {}
        () = terminate => {}
    }
}

/// How the server listens.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Where the PostgreSQL protocol listens.
    pub pg_address: SocketAddr,
    /// Connections beyond this many are refused with 53300.
    pub connections_max: usize,
    /// How clients authenticate.
    pub authentication: AuthMethod,
    /// TLS certificate and key; `None`: clients asking for SSL are told no.
    pub tls: Option<TlsFiles>,
    /// Also listen on a Unix-domain socket in this directory, named as PostgreSQL names its own
    /// (`.s.PGSQL.<port>`), so `psql -h <directory>` and libpq's socket connections reach it.
    pub socket_directory: Option<PathBuf>,
}

impl ServerOptions {
    /// Options for `address` with the defaults: trust, no TLS, [`DEFAULT_CONNECTIONS_MAX`].
    pub fn new(pg_address: SocketAddr) -> ServerOptions {
        ServerOptions {
            pg_address,
            connections_max: DEFAULT_CONNECTIONS_MAX,
            authentication: AuthMethod::Trust,
            tls: None,
            socket_directory: None,
        }
    }
}

/// What every connection of a server shares.
pub struct ServerShared {
    pub(crate) cluster: Cluster,
    pub(crate) cancels: Arc<CancelRegistry>,
    /// The SCRAM mechanisms when authentication is `scram-sha-256`: for plain connections, and for
    /// TLS ones (SCRAM-SHA-256-PLUS offered too, which only makes sense over TLS).
    pub(crate) scram: Option<Scram>,
    pub(crate) role_connections: RoleConnections,
}

/// SCRAM for plain and for TLS connections.
pub(crate) struct Scram {
    pub(crate) plain: SaslMechanisms,
    pub(crate) secure: SaslMechanisms,
}

/// Connections per role, for `CONNECTION LIMIT`.
#[derive(Default)]
pub(crate) struct RoleConnections {
    counts: Arc<parking_lot::Mutex<HashMap<String, usize>>>,
}

impl RoleConnections {
    /// A place for one more connection of `role`, or `None` past its `limit` (-1: none).
    pub(crate) fn take(&self, role: &str, limit: i32) -> Option<RoleSlot> {
        let mut counts = self.counts.lock();
        let count = counts.entry(role.to_string()).or_insert(0);
        if limit >= 0 && *count >= limit as usize {
            return None;
        }
        *count += 1;
        Some(RoleSlot {
            counts: self.counts.clone(),
            role: role.to_string(),
        })
    }
}

/// One connection counted against its role; dropping it frees the place.
pub(crate) struct RoleSlot {
    counts: Arc<parking_lot::Mutex<HashMap<String, usize>>>,
    role: String,
}

impl Drop for RoleSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock();
        if let Some(count) = counts.get_mut(&self.role) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.role);
            }
        }
    }
}

/// Binds the listener; [`Server::run`] then serves until `shutdown` completes.
pub struct Server {
    shared: Arc<ServerShared>,
    tls: Option<pgwire::tokio::tokio_rustls::TlsAcceptor>,
    listener: TcpListener,
    /// The Unix-domain listener and its socket file, removed when the server stops.
    unix: Option<(UnixListener, PathBuf)>,
    options: ServerOptions,
}

impl Server {
    /// Binds `options.pg_address` (port 0 picks a free port: see [`Server::local_address`]); clients
    /// connect to the databases of `cluster`.
    pub async fn bind(cluster: Cluster, options: ServerOptions) -> std::io::Result<Server> {
        let tls = options.tls.as_ref().map(TlsFiles::load).transpose()?;
        let scram = match options.authentication {
            AuthMethod::Trust => None,
            AuthMethod::ScramSha256 => {
                let secret = auth::mock_secret()?;
                let plain = auth::scram(cluster.clone(), secret, None)?;
                let secure = auth::scram(
                    cluster.clone(),
                    secret,
                    tls.as_ref().map(|tls| tls.certificate_pem.as_slice()),
                )?;
                Some(Scram {
                    plain: SaslMechanisms::new(vec![Arc::new(plain)]),
                    secure: SaslMechanisms::new(vec![Arc::new(secure)]),
                })
            }
        };
        let listener = TcpListener::bind(options.pg_address).await?;
        let unix = match &options.socket_directory {
            Some(directory) => Some(bind_unix(directory, listener.local_addr()?.port())?),
            None => None,
        };
        Ok(Server {
            shared: Arc::new(ServerShared {
                cluster,
                cancels: Arc::new(CancelRegistry::default()),
                scram,
                role_connections: RoleConnections::default(),
            }),
            tls: tls.map(|tls| tls.acceptor),
            listener,
            unix,
            options,
        })
    }

    /// The address the listener is bound to.
    pub fn local_address(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The Unix-domain socket the server listens on, if any.
    pub fn socket_path(&self) -> Option<&Path> {
        self.unix.as_ref().map(|(_, path)| path.as_path())
    }

    /// Accepts connections until `shutdown` completes; then closes every connection (their open
    /// transactions roll back) and returns the cluster, still open, to the caller.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Cluster {
        let active = Arc::new(AtomicUsize::new(0));
        let mut connections = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = self.listener.accept() => {
                    let (socket, peer) = match accepted {
                        Ok(accepted) => accepted,
                        Err(error) => {
                            tracing::warn!("accept failed: {error}");
                            continue;
                        }
                    };
                    let _ = socket.set_nodelay(true);
                    let handlers = self.handlers(&active);
                    let active = active.clone();
                    let tls = self.tls.clone();
                    connections.spawn(async move {
                        if let Err(error) =
                            pgwire::tokio::process_socket(socket, tls, handlers).await
                        {
                            tracing::debug!("connection from {peer} ended: {error}");
                        }
                        active.fetch_sub(1, Ordering::SeqCst);
                    });
                }
                accepted = accept_unix(self.unix.as_ref()) => {
                    let socket = match accepted {
                        Ok(socket) => socket,
                        Err(error) => {
                            tracing::warn!("accept on the Unix-domain socket failed: {error}");
                            continue;
                        }
                    };
                    let handlers = self.handlers(&active);
                    let active = active.clone();
                    connections.spawn(async move {
                        if let Err(error) =
                            pgwire::tokio::process_socket_unix(socket, handlers).await
                        {
                            tracing::debug!("connection over the Unix-domain socket ended: {error}");
                        }
                        active.fetch_sub(1, Ordering::SeqCst);
                    });
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        // Dropping each task drops its session, which rolls back its open transaction.
        connections.shutdown().await;
        if let Some((_, path)) = &self.unix {
            let _ = std::fs::remove_file(path);
        }
        self.shared.cluster.clone()
    }

    /// The handlers of one more connection, counted in `active` (the caller uncounts it when the
    /// connection ends); past the limit they refuse it with 53300.
    fn handlers(&self, active: &AtomicUsize) -> Arc<ConnectionFactory> {
        let over_limit = active.fetch_add(1, Ordering::SeqCst) >= self.options.connections_max;
        Arc::new(ConnectionFactory::new(self.shared.clone(), over_limit))
    }
}

/// Binds the Unix-domain socket `.s.PGSQL.<port>` in `directory`. A socket file left by a server
/// that is gone is replaced; one that a live server answers on is not.
fn bind_unix(directory: &Path, port: u16) -> std::io::Result<(UnixListener, PathBuf)> {
    let path = directory.join(format!(".s.PGSQL.{port}"));
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(&path).is_ok() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                format!("another server listens on {}", path.display()),
            ));
        }
        std::fs::remove_file(&path)?;
    }
    Ok((UnixListener::bind(&path)?, path))
}

/// The next connection on the Unix-domain listener; never, without one.
async fn accept_unix(
    listener: Option<&(UnixListener, PathBuf)>,
) -> std::io::Result<tokio::net::UnixStream> {
    match listener {
        Some((listener, _)) => listener.accept().await.map(|(socket, _)| socket),
        None => std::future::pending().await,
    }
}
