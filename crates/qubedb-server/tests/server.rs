//! The server against real clients on loopback: psql (Debian's postgresql-client, installed by
//! `.ci/run`) here, tokio-postgres in [`extended_protocol`]. Each test starts a server on a free port over
//! its own data directory.

mod extended_protocol;

use qubedb::Cluster;
use qubedb_server::{AuthMethod, Server, ServerOptions, TlsFiles};
use std::path::Path;
use std::process::Command;

/// A running server; dropping it shuts it down and waits for the database to close.
struct Running {
    port: u16,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Cluster>>,
}

impl Running {
    fn start(directory: &Path, connections_max: usize) -> Running {
        let mut options = ServerOptions::new("127.0.0.1:0".parse().expect("address"));
        options.connections_max = connections_max;
        Self::start_with(directory, options)
    }

    fn start_with(directory: &Path, options: ServerOptions) -> Running {
        let cluster = Cluster::open(directory).expect("open data directory");
        let runtime = cluster.runtime_handle();
        let server = runtime
            .block_on(Server::bind(cluster, options))
            .expect("bind");
        let port = server.local_address().expect("address").port();
        let (shutdown, signal) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            runtime.block_on(server.run(async {
                let _ = signal.await;
            }))
        });
        Running {
            port,
            shutdown: Some(shutdown),
            thread: Some(thread),
        }
    }

    /// Runs psql with `args` and the SQL on standard input; returns (exit code, stdout, stderr).
    fn psql(&self, sql: &str, args: &[&str]) -> (i32, String, String) {
        self.psql_with(sql, args, &[])
    }

    /// [`Running::psql`] with environment variables (`PGPASSWORD`, `PGSSLMODE`, ...).
    fn psql_with(
        &self,
        sql: &str,
        args: &[&str],
        environment: &[(&str, &str)],
    ) -> (i32, String, String) {
        use std::io::Write;
        let mut child = Command::new("psql")
            .env_remove("PGPASSWORD")
            .envs(environment.iter().copied())
            .args([
                "-X",
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "qubedb",
                "-d",
                "qubedb",
            ])
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("psql must be installed (Debian's postgresql-client; .ci/run installs it)");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(sql.as_bytes())
            .expect("write to psql");
        let output = child.wait_with_output().expect("psql runs");
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).into_owned(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    }

    fn stop(mut self) -> Cluster {
        self.shutdown_and_join().expect("server thread")
    }

    fn shutdown_and_join(&mut self) -> Option<Cluster> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        self.thread
            .take()
            .map(|thread| thread.join().expect("server thread ends"))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown_and_join();
    }
}

#[test]
fn psql_runs_ddl_dml_and_queries() {
    let directory = tempfile::tempdir().expect("tempdir");
    let server = Running::start(directory.path(), 10);
    let (code, out, err) = server.psql(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, score NUMERIC(5,2));\n\
         INSERT INTO t VALUES (1, 'ann', 1.5), (2, NULL, 20);\n\
         UPDATE t SET score = score + 1 WHERE id = 2;\n\
         SELECT * FROM t ORDER BY id;\n\
         SELECT count(*) FROM t;\n",
        &[],
    );
    assert_eq!(code, 0, "stderr: {err}");
    assert_eq!(
        out,
        "CREATE TABLE\nINSERT 0 2\nUPDATE 1\n id | name | score \n----+------+-------\n  1 | ann  |  1.50\n  2 |      | 21.00\n(2 rows)\n\n count \n-------\n     2\n(1 row)\n\n"
    );
}

#[test]
fn psql_connects_over_the_unix_domain_socket() {
    let directory = tempfile::tempdir().expect("tempdir");
    let sockets = tempfile::tempdir().expect("socket directory");
    let mut options = ServerOptions::new("127.0.0.1:0".parse().expect("address"));
    options.socket_directory = Some(sockets.path().to_path_buf());
    let server = Running::start_with(directory.path(), options);
    let socket = sockets.path().join(format!(".s.PGSQL.{}", server.port));
    assert!(socket.exists(), "{}", socket.display());
    // psql reads a host that is a directory as the place of the socket (the last -h wins).
    let host = sockets.path().to_str().expect("a UTF-8 temporary path");
    let (code, out, err) = server.psql(
        "CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (41); SELECT x + 1 FROM t;",
        &["-h", host, "-Atq", "-v", "ON_ERROR_STOP=1"],
    );
    assert_eq!((code, out.as_str()), (0, "42\n"), "stderr: {err}");
    // The same rows over TCP: one server, two ways in.
    let (code, out, err) = server.psql("SELECT x FROM t;", &["-Atq"]);
    assert_eq!((code, out.as_str()), (0, "41\n"), "stderr: {err}");
    server.stop();
    assert!(!socket.exists(), "the socket file outlived the server");
}

#[test]
fn errors_carry_sqlstate_position_and_end_the_query_message() {
    let directory = tempfile::tempdir().expect("tempdir");
    let server = Running::start(directory.path(), 10);
    // One Query message with three statements: the second fails, the third never runs.
    let (code, out, err) = server.psql(
        "",
        &[
            "-c",
            "SELECT 1 AS one; SELECT nope FROM missing; SELECT 3 AS three",
        ],
    );
    assert_eq!(code, 1);
    assert!(out.contains(" one \n-----\n   1\n"), "{out}");
    assert!(!out.contains("three"), "{out}");
    assert!(
        err.contains("ERROR:  relation \"missing\" does not exist"),
        "{err}"
    );
    let (_, _, err) = server.psql("SELEC 1;\n", &["-v", "VERBOSITY=verbose"]);
    assert!(err.contains("ERROR:  42601"), "{err}");
    assert!(err.contains("LINE 1: SELEC 1;\n        ^"), "{err}");
}

#[test]
fn transaction_status_follows_the_session() {
    let directory = tempfile::tempdir().expect("tempdir");
    let server = Running::start(directory.path(), 10);
    // psql's prompt-independent view of the status: \echo :LAST_ERROR_SQLSTATE and the COMMIT tag.
    let (_, out, err) = server.psql(
        "CREATE TABLE t (id INTEGER PRIMARY KEY);\n\
         BEGIN;\n\
         INSERT INTO t VALUES (1);\n\
         INSERT INTO t VALUES (1);\n\
         SELECT 1;\n\
         COMMIT;\n\
         SELECT count(*) AS rows FROM t;\n\
         BEGIN;\n\
         INSERT INTO t VALUES (2);\n\
         SAVEPOINT s;\n\
         INSERT INTO t VALUES (2);\n\
         ROLLBACK TO SAVEPOINT s;\n\
         COMMIT;\n\
         SELECT id FROM t ORDER BY id;\n",
        &[],
    );
    assert!(
        err.contains("duplicate key value violates unique constraint"),
        "{err}"
    );
    assert!(
        err.contains(
            "current transaction is aborted, commands ignored until end of transaction block"
        ),
        "{err}"
    );
    // COMMIT of a failed block rolls back, and says so.
    assert!(out.contains("ROLLBACK\n rows \n------\n    0\n"), "{out}");
    assert!(
        out.contains("ROLLBACK\nCOMMIT\n id \n----\n  2\n(1 row)"),
        "{out}"
    );
}

#[test]
fn committed_rows_survive_a_restart_and_open_transactions_roll_back() {
    let directory = tempfile::tempdir().expect("tempdir");
    let server = Running::start(directory.path(), 10);
    let (code, _, err) = server.psql(
        "CREATE TABLE kept (id INTEGER PRIMARY KEY);\nINSERT INTO kept VALUES (1), (2);\n",
        &[],
    );
    assert_eq!(code, 0, "{err}");
    drop(server.stop());
    let server = Running::start(directory.path(), 10);
    let (_, out, _) = server.psql("SELECT count(*) FROM kept;\n", &["-A", "-t"]);
    assert_eq!(out, "2\n");
}

#[test]
fn the_connection_picks_one_of_several_isolated_databases() {
    let directory = tempfile::tempdir().expect("tempdir");
    let server = Running::start(directory.path(), 10);
    let (code, out, err) = server.psql(
        "CREATE DATABASE shop;\n\
         \\c shop\n\
         CREATE TABLE items (id INT PRIMARY KEY);\n\
         INSERT INTO items VALUES (1);\n\
         SELECT current_database(), count(*) FROM items;\n\
         \\c qubedb\n\
         SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database;\n\
         SELECT * FROM items;\n\
         BEGIN;\nDROP DATABASE shop;\nROLLBACK;\n\
         DROP DATABASE qubedb;\n",
        &["-A", "-t", "-q"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "shop|1\npostgres,qubedb,shop\n");
    assert_eq!(
        err,
        "ERROR:  relation \"items\" does not exist\n\
         ERROR:  DROP DATABASE cannot run inside a transaction block\n\
         ERROR:  cannot drop the currently open database\n"
    );
    // Without a database name the user's name is the database's, as in PostgreSQL.
    let (code, _, err) = server.psql("CREATE ROLE shop LOGIN;\n", &[]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = server.psql(
        "SELECT current_database();\n",
        &["-A", "-t", "-U", "shop", "-d", ""],
    );
    assert_eq!((code, out.as_str()), (0, "shop\n"), "{err}");
    let (code, _, err) = server.psql("SELECT 1;\n", &["-d", "nope"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("FATAL:  database \"nope\" does not exist"),
        "{err}"
    );
    // Databases outlive the server; an unused one can be dropped.
    drop(server.stop());
    let server = Running::start(directory.path(), 10);
    let (code, out, err) = server.psql(
        "SELECT count(*) FROM items;\n\\c postgres\nDROP DATABASE shop;\n\
         SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database;\n",
        &["-A", "-t", "-q", "-d", "shop"],
    );
    assert_eq!((code, out.as_str()), (0, "1\npostgres,qubedb\n"), "{err}");
}

#[test]
fn notices_and_warnings_reach_the_client() {
    let directory = tempfile::tempdir().expect("tempdir");
    let server = Running::start(directory.path(), 10);
    let (code, out, err) = server.psql(
        "DROP TABLE IF EXISTS nope;\nCOMMIT;\nCREATE TABLE t (a INT);\nCREATE TABLE IF NOT EXISTS t (a INT);\n",
        &["-q"],
    );
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
    assert_eq!(
        err,
        "NOTICE:  table \"nope\" does not exist, skipping\n\
         WARNING:  there is no transaction in progress\n\
         NOTICE:  relation \"t\" already exists, skipping\n"
    );
}

/// Runs pgbench against the server; returns its standard output, asserting it succeeded.
fn pgbench(server: &Running, args: &[&str]) -> String {
    let output = Command::new("pgbench")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &server.port.to_string(),
            "-U",
            "qubedb",
        ])
        .args(args)
        .arg("qubedb")
        .output()
        .expect("pgbench must be installed (Debian's postgresql; .ci/run installs it)");
    let out = String::from_utf8_lossy(&output.stdout).into_owned();
    let err = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "pgbench {args:?}: {out}\n{err}");
    out
}

#[test]
fn pgbench_initializes_and_runs_unchanged() {
    let directory = tempfile::tempdir().expect("tempdir");
    let server = Running::start(directory.path(), 10);
    // The default steps: drop, create tables (WITH fillfactor), COPY ... WITH (FREEZE on), VACUUM
    // ANALYZE, ALTER TABLE ... ADD PRIMARY KEY.
    pgbench(&server, &["-i", "-s", "1", "-q"]);
    let (code, out, err) = server.psql(
        "SELECT count(*) FROM pgbench_accounts;\n\
         SELECT relname, reltuples FROM pg_class WHERE relname LIKE 'pgbench_%' AND relkind = 'r' ORDER BY 1;\n",
        &["-A", "-t"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "100000\npgbench_accounts|100000\npgbench_branches|1\npgbench_history|0\npgbench_tellers|10\n"
    );
    // Select-only (simple and prepared, two clients) and the TPC-B-like script: nothing fails.
    for args in [
        &["-S", "-T", "2"][..],
        &["-S", "-M", "prepared", "-c", "2", "-j", "2", "-T", "2"][..],
        &["-T", "2"][..],
        &["-M", "extended", "-t", "20"][..],
    ] {
        let out = pgbench(&server, args);
        assert!(
            out.contains("number of failed transactions: 0 (0.000%)"),
            "{args:?}: {out}"
        );
        let processed = out
            .lines()
            .find_map(|line| line.strip_prefix("number of transactions actually processed: "))
            .and_then(|count| count.split('/').next())
            .and_then(|count| count.trim().parse::<u64>().ok())
            .unwrap_or(0);
        assert!(processed > 0, "{args:?}: {out}");
    }
}

#[test]
fn connections_past_the_limit_are_refused() {
    let directory = tempfile::tempdir().expect("tempdir");
    let server = Running::start(directory.path(), 0);
    let (code, _, err) = server.psql("SELECT 1;\n", &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("sorry, too many clients already"), "{err}");
}

#[test]
fn malformed_messages_close_only_their_connection() {
    use std::io::{Read, Write};
    let directory = tempfile::tempdir().expect("tempdir");
    let server = Running::start(directory.path(), 10);
    // A startup packet claiming a length far past what follows, then garbage.
    let mut socket = std::net::TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    socket
        .write_all(&[0, 0, 0, 9, 0, 3, 0, 0, 0xff, 0xfe, 0xfd, 0xfc, 0xfb])
        .expect("write");
    let _ = socket.shutdown(std::net::Shutdown::Write);
    let mut buffer = Vec::new();
    let _ = socket.read_to_end(&mut buffer);
    // The server still answers everyone else.
    let (code, out, err) = server.psql("SELECT 41 + 1 AS answer;\n", &["-A", "-t"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "42\n");
}

/// Random bytes after a valid startup, and random bytes instead of one, from a fixed seed: each such
/// connection is closed or answered with an error, and the server keeps serving.
#[test]
fn random_bytes_never_take_the_server_down() {
    use std::io::{Read, Write};
    use std::time::Duration;
    let directory = tempfile::tempdir().expect("tempdir");
    let server = Running::start(directory.path(), 64);
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        // xorshift64*: deterministic, no dependency.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    // A well-formed startup message for user "fuzz", database "qubedb".
    let mut startup = Vec::new();
    let body = b"\0\x03\0\0user\0fuzz\0database\0qubedb\0\0";
    startup.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
    startup.extend_from_slice(body);
    for round in 0..200 {
        let mut socket = std::net::TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut message = if round % 2 == 0 {
            startup.clone()
        } else {
            Vec::new()
        };
        let length = (next() % 64) as usize;
        for _ in 0..length {
            message.push(next() as u8);
        }
        // Sometimes a plausible frame: a known message type with a random length field.
        if round % 3 == 0 {
            message.push(b"QPBEDSXHCdcf"[(next() % 12) as usize]);
            message.extend_from_slice(&((next() % 100_000) as u32).to_be_bytes());
        }
        let _ = socket.write_all(&message);
        let _ = socket.shutdown(std::net::Shutdown::Write);
        let mut answer = Vec::new();
        let _ = socket.read_to_end(&mut answer);
    }
    let (code, out, err) = server.psql("SELECT 6 * 7 AS answer;\n", &["-A", "-t"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "42\n");
}

#[test]
fn the_connection_user_is_an_existing_role_and_the_session_user() {
    let directory = tempfile::tempdir().expect("tempdir");
    let server = Running::start(directory.path(), 10);
    let (code, _, err) = server.psql(
        "CREATE ROLE alice LOGIN;\nCREATE ROLE shy NOLOGIN;\nCREATE ROLE once LOGIN CONNECTION LIMIT 1;\n",
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = server.psql(
        "SELECT current_user, session_user;\nSHOW session_authorization;\nSHOW is_superuser;\n",
        &["-A", "-t", "-U", "alice"],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, "alice|alice\nalice\noff\n");
    // Even under `trust` the role must exist and may log in, as in PostgreSQL.
    let (code, _, err) = server.psql("SELECT 1;\n", &["-U", "nobody"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("FATAL:  role \"nobody\" does not exist"),
        "{err}"
    );
    let (code, _, err) = server.psql("SELECT 1;\n", &["-U", "shy"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("FATAL:  role \"shy\" is not permitted to log in"),
        "{err}"
    );
    // CONNECTION LIMIT 1: a second connection of `once` is refused while the first is open.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let address = format!(
            "host=127.0.0.1 port={} user=once dbname=qubedb",
            server.port
        );
        let connect = || tokio_postgres::connect(&address, tokio_postgres::NoTls);
        let (_first, connection) = connect().await.expect("first connection");
        let driver = tokio::spawn(connection);
        let error = connect().await.err().expect("second connection refused");
        let error = error.as_db_error().expect("server error");
        assert_eq!(error.code().code(), "53300");
        assert_eq!(error.message(), "too many connections for role \"once\"");
        driver.abort();
    });
}

/// Opens `directory`, runs `sql` as the bootstrap role, and closes it again (how an administrator sets
/// passwords before serving with SCRAM).
fn prepare_roles(directory: &Path, sql: &str) {
    let database = qubedb::Database::open(directory).expect("open");
    database.session().run(sql).expect("roles");
}

#[test]
fn scram_sha_256_checks_passwords_without_revealing_users() {
    let directory = tempfile::tempdir().expect("tempdir");
    prepare_roles(
        directory.path(),
        "ALTER ROLE qubedb PASSWORD 'root secret'; CREATE USER alice PASSWORD 'pencil'; \
         CREATE USER nopass; CREATE USER old PASSWORD 'pencil' VALID UNTIL '2001-01-01'",
    );
    let mut options = ServerOptions::new("127.0.0.1:0".parse().expect("address"));
    options.authentication = AuthMethod::ScramSha256;
    let server = Running::start_with(directory.path(), options);
    let query = "SELECT current_user;\n";
    let (code, out, err) = server.psql_with(query, &["-A", "-t"], &[("PGPASSWORD", "root secret")]);
    assert_eq!((code, out.as_str()), (0, "qubedb\n"), "{err}");
    let (code, out, err) = server.psql_with(
        query,
        &["-A", "-t", "-U", "alice"],
        &[("PGPASSWORD", "pencil")],
    );
    assert_eq!((code, out.as_str()), (0, "alice\n"), "{err}");
    // A wrong password, an unknown user, a role without a password and an expired one all read alike.
    for user in ["alice", "nobody", "nopass", "old"] {
        let (code, _, err) = server.psql_with(query, &["-U", user], &[("PGPASSWORD", "wrong")]);
        assert_eq!(code, 2, "{user}");
        assert!(
            err.contains(&format!(
                "FATAL:  password authentication failed for user \"{user}\""
            )),
            "{user}: {err}"
        );
    }
    let (code, _, err) = server.psql_with(query, &["-U", "old"], &[("PGPASSWORD", "pencil")]);
    assert_eq!(code, 2, "expired: {err}");
    // Passwords change over the wire too.
    let (code, _, err) = server.psql_with(
        "ALTER ROLE alice PASSWORD 'changed';\n",
        &[],
        &[("PGPASSWORD", "root secret")],
    );
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = server.psql_with(
        query,
        &["-A", "-t", "-U", "alice"],
        &[("PGPASSWORD", "changed")],
    );
    assert_eq!((code, out.as_str()), (0, "alice\n"), "{err}");
}

#[test]
fn tls_with_scram_channel_binding() {
    let directory = tempfile::tempdir().expect("tempdir");
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
    let certificate = directory.path().join("server.crt");
    let key = directory.path().join("server.key");
    std::fs::write(&certificate, certified.cert.pem()).expect("write certificate");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("write key");
    prepare_roles(directory.path(), "ALTER ROLE qubedb PASSWORD 'root secret'");
    let mut options = ServerOptions::new("127.0.0.1:0".parse().expect("address"));
    options.authentication = AuthMethod::ScramSha256;
    options.tls = Some(TlsFiles { certificate, key });
    let server = Running::start_with(directory.path(), options);
    let (code, out, err) = server.psql_with(
        "\\conninfo\nSELECT current_user;\n",
        &["-A", "-t"],
        &[
            ("PGPASSWORD", "root secret"),
            ("PGSSLMODE", "require"),
            ("PGCHANNELBINDING", "require"),
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("SSL connection (protocol: TLSv1.3"), "{out}");
    assert!(out.ends_with("qubedb\n"), "{out}");
    // Without SSL the same server still serves (sslmode=disable), with SCRAM-SHA-256 alone.
    let (code, out, err) = server.psql_with(
        "SELECT 1;\n",
        &["-A", "-t"],
        &[("PGPASSWORD", "root secret"), ("PGSSLMODE", "disable")],
    );
    assert_eq!((code, out.as_str()), (0, "1\n"), "{err}");
    // A server without TLS says so to a client that requires it.
    drop(server);
    let plain = Running::start(directory.path(), 10);
    let (code, _, err) = plain.psql_with("SELECT 1;\n", &[], &[("PGSSLMODE", "require")]);
    assert_eq!(code, 2);
    assert!(err.contains("server does not support SSL"), "{err}");
}

#[test]
fn copy_from_stdin_and_to_stdout_through_psql() {
    let directory = tempfile::tempdir().expect("tempdir");
    let server = Running::start(directory.path(), 10);
    let csv = directory.path().join("in.csv");
    std::fs::write(&csv, "id,name\n3,\"c, d\"\n4,\n").expect("write csv");
    let exported = directory.path().join("out.txt");
    // Inline COPY data (text), `\copy` from a client-side CSV file, COPY TO STDOUT, `\copy` to a file,
    // and a COPY whose data is bad: rolled back, and the statements after it still run.
    let (code, out, err) = server.psql(
        &format!(
            "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT);\n\
             COPY t FROM STDIN;\n\
             1\tone\\ttab\n\
             2\t\\N\n\
             \\.\n\
             \\copy t FROM '{}' WITH (FORMAT csv, HEADER)\n\
             COPY t TO STDOUT;\n\
             COPY (SELECT id, name FROM t WHERE id > 2 ORDER BY id) TO STDOUT WITH (FORMAT csv, HEADER);\n\
             \\copy t TO '{}'\n\
             COPY t FROM STDIN;\n\
             5\tfive\n\
             x\tbad\n\
             \\.\n\
             SELECT count(*) AS rows FROM t;\n",
            csv.display(),
            exported.display()
        ),
        &[],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "CREATE TABLE\nCOPY 2\nCOPY 2\n1\tone\\ttab\n2\t\\N\n3\tc, d\n4\t\\N\n\
         id,name\n3,\"c, d\"\n4,\nCOPY 4\n rows \n------\n    4\n(1 row)\n\n"
    );
    assert!(
        err.contains("invalid input syntax for type integer: \"x\""),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(&exported).expect("exported"),
        "1\tone\\ttab\n2\t\\N\n3\tc, d\n4\t\\N\n"
    );
    // A COPY into a missing table fails before psql sends any data.
    let (_, _, err) = server.psql("COPY nope FROM STDIN;\n1\n\\.\n", &[]);
    assert!(err.contains("relation \"nope\" does not exist"), "{err}");
}

#[test]
fn psql_lists_tables_schemas_databases_and_roles() {
    let directory = tempfile::tempdir().expect("tempdir");
    let server = Running::start(directory.path(), 10);
    let (code, out, err) = server.psql(
        "CREATE TABLE parent (id INTEGER PRIMARY KEY, name TEXT UNIQUE);\n\
         CREATE VIEW names AS SELECT name FROM parent;\n\
         \\dt\n\\dv\n\\di\n\\dn\n\\l\n\\du\n",
        &["-q"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.is_empty(), "{err}");
    assert_eq!(
        out,
        "        List of relations\n Schema |  Name  | Type  | Owner  \n\
         --------+--------+-------+--------\n public | parent | table | qubedb\n(1 row)\n\n\
         \x20      List of relations\n Schema | Name  | Type | Owner  \n\
         --------+-------+------+--------\n public | names | view | qubedb\n(1 row)\n\n\
         \x20                List of relations\n Schema |      Name       | Type  | Owner  | Table  \n\
         --------+-----------------+-------+--------+--------\n\
         \x20public | parent_name_key | index | qubedb | parent\n\
         \x20public | parent_pkey     | index | qubedb | parent\n(2 rows)\n\n\
         \x20List of schemas\n  Name  | Owner  \n--------+--------\n public | qubedb\n(1 row)\n\n\
         \x20                                        List of databases\n\
         \x20  Name   | Owner  | Encoding | Collate | Ctype | ICU Locale | Locale Provider | Access privileges \n\
         ----------+--------+----------+---------+-------+------------+-----------------+-------------------\n\
         \x20postgres | qubedb | UTF8     | C       | C     |            | libc            | \n\
         \x20qubedb   | qubedb | UTF8     | C       | C     |            | libc            | \n(2 rows)\n\n\
         \x20                                  List of roles\n\
         \x20Role name |                         Attributes                         | Member of \n\
         -----------+------------------------------------------------------------+-----------\n\
         \x20qubedb    | Superuser, Create role, Create DB, Replication, Bypass RLS | \n\n"
    );
}

#[test]
fn psql_describes_tables_indexes_and_constraints() {
    let directory = tempfile::tempdir().expect("tempdir");
    let server = Running::start(directory.path(), 10);
    let (code, out, err) = server.psql(
        "CREATE TABLE parent (id INTEGER PRIMARY KEY, name VARCHAR(20) NOT NULL UNIQUE, \
         score NUMERIC(5,2) DEFAULT 0, CHECK (score >= 0));\n\
         CREATE TABLE child (id SERIAL PRIMARY KEY, \
         parent_id INT REFERENCES parent(id) ON DELETE CASCADE, note TEXT);\n\
         CREATE INDEX child_note ON child (note);\n\
         \\d parent\n\\d child\n\\d child_note\n",
        &["-q"],
    );
    assert_eq!(code, 0, "{err}");
    assert!(err.is_empty(), "{err}");
    let expected = r#"                      Table "public.parent"
 Column |         Type          | Collation | Nullable | Default 
--------+-----------------------+-----------+----------+---------
 id     | integer               |           | not null | 
 name   | character varying(20) |           | not null | 
 score  | numeric(5,2)          |           |          | 0
Indexes:
    "parent_pkey" PRIMARY KEY, btree (id)
    "parent_name_key" UNIQUE CONSTRAINT, btree (name)
Check constraints:
    "parent_score_check" CHECK (score >= 0)
Referenced by:
    TABLE "child" CONSTRAINT "child_parent_id_fkey" FOREIGN KEY (parent_id) REFERENCES parent(id) ON DELETE CASCADE

                              Table "public.child"
  Column   |  Type   | Collation | Nullable |              Default              
-----------+---------+-----------+----------+-----------------------------------
 id        | integer |           | not null | nextval('child_id_seq'::regclass)
 parent_id | integer |           |          | 
 note      | text    |           |          | 
Indexes:
    "child_pkey" PRIMARY KEY, btree (id)
    "child_note" btree (note)
Foreign-key constraints:
    "child_parent_id_fkey" FOREIGN KEY (parent_id) REFERENCES parent(id) ON DELETE CASCADE

     Index "public.child_note"
 Column | Type | Key? | Definition 
--------+------+------+------------
 note   | text | yes  | note
btree, for table "public.child"

"#;
    assert_eq!(out, expected);
}

#[test]
fn psycopg_round_trips_types_prepared_statements_copy_and_errors() {
    run_python_client("psycopg_client.py");
}

#[test]
fn sqlalchemy_orm_and_reflection() {
    run_python_client("sqlalchemy_client.py");
}

#[test]
fn jdbc_prepared_statements_transactions_and_metadata() {
    let jar = std::env::var("QUBEDB_JDBC_JAR")
        .unwrap_or_else(|_| "/usr/share/java/postgresql.jar".to_string());
    run_client(
        "java",
        &["-cp", &jar],
        "JdbcClient.java",
        "java (a JDK) and Debian's libpostgresql-jdbc-java must be installed (.ci/run installs them)",
    );
}

#[test]
fn node_postgres_queries_prepared_statements_and_errors() {
    run_client(
        "node",
        &[],
        "node_client.js",
        "node must be installed with the npm package pg on NODE_PATH (.ci/run installs them)",
    );
}

/// Runs `tests/clients/<script>` against a fresh server; the script prints `ok` when all its checks hold.
fn run_python_client(script: &str) {
    run_client(
        "python3",
        &[],
        script,
        "python3 must be installed (.ci/run installs it with psycopg and SQLAlchemy)",
    );
}

/// Runs `program [arguments] tests/clients/<script> PORT` against a fresh server; `missing` says how
/// to install the program.
fn run_client(program: &str, arguments: &[&str], script: &str, missing: &str) {
    let directory = tempfile::tempdir().expect("tempdir");
    let server = Running::start(directory.path(), 10);
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(script);
    let output = Command::new(program)
        .args(arguments)
        .arg(&script)
        .arg(server.port.to_string())
        .output()
        .expect(missing);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{}: stdout: {stdout}\nstderr: {stderr}",
        script.display()
    );
    assert_eq!(stdout, "ok\n");
}
