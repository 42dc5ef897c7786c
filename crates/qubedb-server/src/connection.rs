//! One client connection: its [`Session`], the startup exchange and the simple-query cycle.
//!
//! pgwire drives the socket and calls these handlers. Startup is `trust`: the server parameters a
//! client expects (`server_version`, `client_encoding`, `DateStyle`, `integer_datetimes`,
//! `standard_conforming_strings`, `TimeZone`, ...) are sent with their QubeDB values. A Query message
//! runs its statements one by one, each answered as it completes, its rows streamed a batch at a time
//! (`RowStream`, shared with the extended protocol); the first error ends the message.
//! ReadyForQuery reports the session's own transaction state (idle, in a block, or in a failed block),
//! not one inferred from the statements' kinds.

use std::collections::{HashMap, VecDeque};
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::{BufMut, BytesMut};
use futures::{Sink, SinkExt};
use pgwire::api::auth::driver::{AuthDriver, AuthOutcome};
use pgwire::api::auth::mechanism::AuthMechanismFactory;
use pgwire::api::auth::{
    ServerParameterProvider, StartupHandler, finish_authentication, protocol_negotiation,
    save_startup_parameters_to_metadata,
};
use pgwire::api::cancel::CancelHandler;
use pgwire::api::copy::CopyHandler;
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler, send_ready_for_query};
use pgwire::api::results::Response;
use pgwire::api::store::PortalStore;
use pgwire::api::{
    ClientInfo, ClientPortalStore, PgWireConnectionState, PgWireServerHandlers, Type,
};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::data::{DataRow, FieldDescription, RowDescription};
use pgwire::messages::response::{CommandComplete, EmptyQueryResponse, TransactionStatus};
use pgwire::messages::simplequery::Query;
use pgwire::messages::startup::Authentication;
use pgwire::messages::startup::SecretKey;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use qubedb::arrow::array::RecordBatch;
use qubedb::arrow::datatypes::Schema;
use qubedb::result::batch_formatters;
use qubedb::{PreparedStatement, QueryResult, Session};
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};

use crate::cancel::{Canceler, Registration};
use crate::codec::encode_binary;
use crate::copy::{PendingCopy, send_copy_out, start_copy_in};
use crate::extended::{PortalEntry, StatementEntry};
use crate::types::{pg_type, type_modifier, type_size};
use crate::{RoleSlot, ServerShared};

/// What pgwire asks for the handlers of one connection.
pub struct ConnectionFactory {
    handlers: Arc<ConnectionHandlers>,
    canceler: Arc<Canceler>,
}

impl ConnectionFactory {
    /// `shared`: what every connection of the server uses (the databases, the roles, cancel
    /// registrations, the authentication method). `over_limit`: the connection came in past
    /// `--max-connections`, and startup refuses it.
    pub fn new(shared: Arc<ServerShared>, over_limit: bool) -> ConnectionFactory {
        ConnectionFactory {
            canceler: Arc::new(Canceler {
                registry: shared.cancels.clone(),
            }),
            handlers: Arc::new(ConnectionHandlers {
                shared,
                driver: AuthDriver::new(ServerParameters { superuser: false }),
                connection: Mutex::new(None),
                over_limit,
                registration: std::sync::OnceLock::new(),
                role_slot: std::sync::OnceLock::new(),
            }),
        }
    }
}

impl PgWireServerHandlers for ConnectionFactory {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.handlers.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        self.handlers.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.handlers.clone()
    }

    fn copy_handler(&self) -> Arc<impl CopyHandler> {
        self.handlers.clone()
    }

    fn cancel_handler(&self) -> Arc<impl CancelHandler> {
        self.canceler.clone()
    }
}

/// The handlers of one connection, around its session.
pub struct ConnectionHandlers {
    shared: Arc<ServerShared>,
    /// Runs the SCRAM exchange; its parameter provider is not used (see `start_session`).
    driver: AuthDriver<ServerParameters>,
    /// Set at startup, once the database is known.
    pub(crate) connection: Mutex<Option<Connection>>,
    over_limit: bool,
    /// This connection's process id and secret for CancelRequest, from startup on.
    registration: std::sync::OnceLock<Registration>,
    /// The connection's place under its role's `CONNECTION LIMIT`.
    role_slot: std::sync::OnceLock<RoleSlot>,
}

impl ConnectionHandlers {
    /// The connection's state; an error before startup has chosen the database.
    pub(crate) async fn lock(&self) -> PgWireResult<MappedMutexGuard<'_, Connection>> {
        MutexGuard::try_map(self.connection.lock().await, Option::as_mut).map_err(|_| {
            user_error(
                "FATAL",
                "08P01",
                "the connection has not completed its startup",
            )
        })
    }
}

/// One connection's state: its session and its prepared statements and portals.
pub struct Connection {
    pub(crate) session: Session,
    pub(crate) statements: HashMap<String, Arc<StatementEntry>>,
    /// Statements parsed before, by text and declared parameter types (`extended.rs`).
    pub(crate) parsed: crate::extended::ParseCache,
    pub(crate) portals: HashMap<String, PortalEntry>,
    /// A `COPY ... FROM STDIN` receiving its data.
    pub(crate) copy: Option<PendingCopy>,
}

impl Connection {
    /// Drops the unnamed statement and portal (a simple Query replaces them, as in PostgreSQL).
    fn forget_unnamed(&mut self) {
        self.statements.remove("");
        self.portals.remove("");
    }
}

/// The ParameterStatus values sent at startup.
struct ServerParameters {
    superuser: bool,
}

impl ServerParameterProvider for ServerParameters {
    fn server_parameters<C>(&self, client: &C) -> Option<HashMap<String, String>>
    where
        C: ClientInfo,
    {
        let application_name = client
            .metadata()
            .get("application_name")
            .cloned()
            .unwrap_or_default();
        let user = client.metadata().get("user").cloned().unwrap_or_default();
        Some(HashMap::from([
            ("server_version".into(), qubedb::SERVER_VERSION.into()),
            ("server_encoding".into(), "UTF8".into()),
            ("client_encoding".into(), "UTF8".into()),
            ("DateStyle".into(), "ISO, MDY".into()),
            ("IntervalStyle".into(), "postgres".into()),
            ("integer_datetimes".into(), "on".into()),
            ("standard_conforming_strings".into(), "on".into()),
            ("TimeZone".into(), "UTC".into()),
            (
                "is_superuser".into(),
                if self.superuser { "on" } else { "off" }.into(),
            ),
            ("session_authorization".into(), user),
            ("application_name".into(), application_name),
            ("default_transaction_read_only".into(), "off".into()),
            ("in_hot_standby".into(), "off".into()),
        ]))
    }
}

pub(crate) fn user_error(severity: &str, code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        severity.to_string(),
        code.to_string(),
        message.into(),
    )))
}

#[async_trait]
impl StartupHandler for ConnectionHandlers {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let outcome = match message {
            PgWireFrontendMessage::Startup(startup) => {
                protocol_negotiation(client, &startup).await?;
                save_startup_parameters_to_metadata(client, &startup);
                if self.over_limit {
                    return Err(user_error(
                        "FATAL",
                        "53300",
                        "sorry, too many clients already",
                    ));
                }
                match &self.shared.scram {
                    None => AuthOutcome::Authenticated {
                        identity: None,
                        final_message: None,
                    },
                    Some(scram) => {
                        let mechanisms = if client.is_secure() {
                            &scram.secure
                        } else {
                            &scram.plain
                        };
                        self.driver
                            .begin_authentication(client, mechanisms.create())
                            .await?
                    }
                }
            }
            PgWireFrontendMessage::PasswordMessageFamily(message) => self
                .driver
                .advance_authentication(client, message)
                .await
                .map_err(|error| match error {
                    // The client-first message's user is empty (libpq sends the startup's user).
                    PgWireError::InvalidPassword(_) => user_error(
                        "FATAL",
                        "28P01",
                        format!(
                            "password authentication failed for user \"{}\"",
                            client.metadata().get("user").cloned().unwrap_or_default()
                        ),
                    ),
                    other => other,
                })?,
            _ => return Ok(()),
        };
        if let AuthOutcome::Authenticated { final_message, .. } = outcome {
            self.start_session(client, final_message).await?;
        }
        Ok(())
    }
}

impl ConnectionHandlers {
    /// After authentication: checks the role, opens a session on the requested database, and ends
    /// the startup (AuthenticationOk, ParameterStatus, BackendKeyData, ReadyForQuery).
    async fn start_session<C>(
        &self,
        client: &mut C,
        final_message: Option<Authentication>,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let fatal = |code: &str, message: String| user_error("FATAL", code, message);
        let user = client.metadata().get("user").cloned().ok_or_else(|| {
            fatal(
                "28000",
                "no PostgreSQL user name specified in startup packet".into(),
            )
        })?;
        let role = self
            .shared
            .cluster
            .role(&user)
            .ok_or_else(|| fatal("28000", format!("role \"{user}\" does not exist")))?;
        if !role.login {
            return Err(fatal(
                "28000",
                format!("role \"{user}\" is not permitted to log in"),
            ));
        }
        let slot = self
            .shared
            .role_connections
            .take(&role.name, role.connection_limit)
            .ok_or_else(|| fatal("53300", format!("too many connections for role \"{user}\"")))?;
        let _ = self.role_slot.set(slot);
        // As in PostgreSQL, the database defaults to the user's name.
        let database_name = client
            .metadata()
            .get("database")
            .filter(|name| !name.is_empty())
            .cloned()
            .unwrap_or_else(|| user.clone());
        let database = self
            .shared
            .cluster
            .database(&database_name)
            .map_err(|error| {
                let mut info = error_info(&error);
                info.severity = "FATAL".into();
                PgWireError::UserError(Box::new(info))
            })?;
        let mut session = database.session();
        session.set_user(&user);
        let registration = self
            .registration
            .get_or_init(|| self.shared.cancels.register(session.cancel_handle()));
        *self.connection.lock().await = Some(Connection {
            session,
            statements: HashMap::new(),
            parsed: Default::default(),
            portals: HashMap::new(),
            copy: None,
        });
        if let Some(message) = final_message {
            client
                .send(PgWireBackendMessage::Authentication(message))
                .await?;
        }
        client.set_pid_and_secret_key(registration.pid, SecretKey::I32(registration.secret));
        finish_authentication(
            client,
            &ServerParameters {
                superuser: role.superuser,
            },
        )
        .await
    }
}

/// The wire form of a QubeDB error.
pub(crate) fn error_info(error: &qubedb::Error) -> ErrorInfo {
    let mut info = ErrorInfo::new(
        "ERROR".into(),
        error.code.to_string(),
        error.message.clone(),
    );
    info.detail = error.detail.clone();
    info.hint = error.hint.clone();
    info.position = error.position.map(|position| position.to_string());
    info.where_context = error.context().map(str::to_string);
    info
}

/// A result column's wire encoding: its PostgreSQL type and whether it goes out in binary.
struct ColumnEncoding {
    pg_type: Type,
    binary: bool,
}

/// The formats (`0` text, `1` binary) requested for `count` columns: none means all text, one applies
/// to every column, else one per column.
pub(crate) fn column_formats(codes: &[i16], count: usize) -> PgWireResult<Vec<bool>> {
    let binary = |code: i16| match code {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(user_error(
            "ERROR",
            "22023",
            format!("unsupported format code: {other}"),
        )),
    };
    match codes {
        [] => Ok(vec![false; count]),
        [code] => Ok(vec![binary(*code)?; count]),
        codes if codes.len() == count => codes.iter().map(|&code| binary(code)).collect(),
        codes => Err(user_error(
            "ERROR",
            "08P01",
            format!(
                "bind message has {} result formats but query has {count} columns",
                codes.len()
            ),
        )),
    }
}

/// RowDescription for `schema`, each column in its format.
pub(crate) fn row_description(schema: &Schema, binary: &[bool]) -> RowDescription {
    RowDescription::new(
        schema
            .fields()
            .iter()
            .zip(binary.iter().copied().chain(std::iter::repeat(false)))
            .map(|(field, binary)| {
                let pg_type = pg_type(field);
                FieldDescription::new(
                    field.name().clone(),
                    0,
                    0,
                    pg_type.oid(),
                    type_size(&pg_type),
                    type_modifier(field),
                    i16::from(binary),
                )
            })
            .collect(),
    )
}

/// The rows of one statement's result, encoded for the wire a batch at a time, so a portal can stop
/// after any row and carry on at the next Execute.
pub(crate) struct RowStream {
    result: QueryResult,
    columns: Vec<ColumnEncoding>,
    pending: VecDeque<DataRow>,
    exhausted: bool,
}

impl RowStream {
    /// `binary[i]`: column `i` goes out in binary format.
    pub(crate) fn new(result: QueryResult, binary: &[bool]) -> RowStream {
        let columns = result
            .schema()
            .map(|schema| {
                schema
                    .fields()
                    .iter()
                    .zip(binary.iter().copied().chain(std::iter::repeat(false)))
                    .map(|(field, binary)| ColumnEncoding {
                        pg_type: pg_type(field),
                        binary,
                    })
                    .collect()
            })
            .unwrap_or_default();
        RowStream {
            result,
            columns,
            pending: VecDeque::new(),
            exhausted: false,
        }
    }

    /// The next row, or `None` after the last.
    pub(crate) async fn next_row(&mut self) -> PgWireResult<Option<DataRow>> {
        while self.pending.is_empty() && !self.exhausted {
            match self.result.next_batch_async().await {
                Ok(Some(batch)) => self.encode(&batch)?,
                Ok(None) => self.exhausted = true,
                Err(error) => {
                    self.exhausted = true;
                    return Err(engine_error(&error));
                }
            }
        }
        Ok(self.pending.pop_front())
    }

    fn encode(&mut self, batch: &RecordBatch) -> PgWireResult<()> {
        let formatters = batch_formatters(batch);
        let column_count = batch.num_columns() as i16;
        for row in 0..batch.num_rows() {
            let mut data = BytesMut::new();
            for ((formatter, column), encoding) in
                formatters.iter().zip(batch.columns()).zip(&self.columns)
            {
                match formatter.format(row) {
                    None => data.put_i32(-1),
                    Some(text) if !encoding.binary => {
                        data.put_i32(text.len() as i32);
                        data.put_slice(text.as_bytes());
                    }
                    Some(text) => {
                        let mut value = BytesMut::new();
                        encode_binary(column, row, &encoding.pg_type, &text, &mut value)
                            .map_err(|error| user_error("ERROR", error.code, error.message))?;
                        data.put_i32(value.len() as i32);
                        data.put_slice(&value);
                    }
                }
            }
            self.pending.push_back(DataRow::new(data, column_count));
        }
        Ok(())
    }

    /// The CommandComplete tag once the rows are read; `rows` is how many this Execute sent.
    pub(crate) fn tag(&self, rows: usize) -> String {
        let tag = self.result.tag();
        if tag.starts_with("SELECT") {
            format!("SELECT {rows}")
        } else {
            tag
        }
    }
}

/// Sends a statement's notices and warnings (NoticeResponse), ahead of its result as PostgreSQL does.
pub(crate) async fn send_notices<C>(client: &mut C, notices: &[qubedb::Notice]) -> PgWireResult<()>
where
    C: Sink<PgWireBackendMessage> + Unpin + Send,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    for notice in notices {
        let info = ErrorInfo::new(
            notice.severity.to_string(),
            notice.code.to_string(),
            notice.message.clone(),
        );
        client
            .feed(PgWireBackendMessage::NoticeResponse(info.into()))
            .await?;
    }
    Ok(())
}

/// A QubeDB error as a pgwire error (an ErrorResponse of severity ERROR).
pub(crate) fn engine_error(error: &qubedb::Error) -> PgWireError {
    PgWireError::UserError(Box::new(error_info(error)))
}

impl ConnectionHandlers {
    /// Runs the statements of one Query message, answering each as it completes. Returns true when
    /// it stopped at a `COPY ... FROM STDIN` that now waits for the client's data.
    async fn run_simple_query<C>(&self, client: &mut C, sql: &str) -> PgWireResult<bool>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut connection = self.lock().await?;
        connection.forget_unnamed();
        let statements = match connection.session.prepare_script(sql) {
            Ok(statements) => statements,
            Err(error) => {
                client
                    .feed(PgWireBackendMessage::ErrorResponse(
                        error_info(&error).into(),
                    ))
                    .await?;
                return Ok(false);
            }
        };
        if statements.is_empty() {
            client
                .feed(PgWireBackendMessage::EmptyQueryResponse(
                    EmptyQueryResponse::new(),
                ))
                .await?;
            return Ok(false);
        }
        run_statements(client, &mut connection, statements.into(), true).await
    }

    /// The session's transaction status, as ReadyForQuery reports it.
    pub(crate) async fn transaction_status(&self) -> TransactionStatus {
        match self.connection.lock().await.as_ref() {
            Some(connection) => status_of(&connection.session),
            None => TransactionStatus::Idle,
        }
    }
}

/// Runs the statements of a Query message in order until one fails; the error ends the message.
/// A `COPY ... FROM STDIN` stops the run to wait for the client's data (the rest resumes after it) when
/// `copy_in_allowed`; returns true then.
pub(crate) async fn run_statements<C>(
    client: &mut C,
    connection: &mut Connection,
    mut statements: VecDeque<PreparedStatement>,
    copy_in_allowed: bool,
) -> PgWireResult<bool>
where
    C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    while let Some(statement) = statements.pop_front() {
        let outcome = if statement.is_copy_from_stdin() {
            if copy_in_allowed {
                let remaining = std::mem::take(&mut statements);
                match start_copy_in(client, connection, statement, remaining, false).await {
                    Ok(()) => return Ok(true),
                    Err(error) => Err(error),
                }
            } else {
                Err(user_error(
                    "ERROR",
                    "0A000",
                    "a second COPY FROM STDIN in one Query message is not supported",
                ))
            }
        } else {
            run_one(client, &mut connection.session, &statement).await
        };
        if let Err(error) = outcome {
            let info = match error {
                PgWireError::UserError(info) => *info,
                other => return Err(other),
            };
            client
                .feed(PgWireBackendMessage::ErrorResponse(info.into()))
                .await?;
            break;
        }
    }
    Ok(false)
}

/// Runs one statement of a Query message and sends its rows (text format) and CommandComplete.
async fn run_one<C>(
    client: &mut C,
    session: &mut Session,
    statement: &PreparedStatement,
) -> PgWireResult<()>
where
    C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let result = session
        .execute_prepared_async(statement, &[])
        .await
        .map_err(|error| engine_error(&error))?;
    send_notices(client, result.notices()).await?;
    if result.copy_out().is_some() {
        return send_copy_out(client, result).await;
    }
    if let Some(schema) = result.schema() {
        client
            .feed(PgWireBackendMessage::RowDescription(row_description(
                &schema,
                &[],
            )))
            .await?;
    }
    let mut rows = RowStream::new(result, &[]);
    let mut count = 0;
    while let Some(row) = rows.next_row().await? {
        client.feed(PgWireBackendMessage::DataRow(row)).await?;
        count += 1;
    }
    client
        .feed(PgWireBackendMessage::CommandComplete(CommandComplete::new(
            rows.tag(count),
        )))
        .await?;
    Ok(())
}

/// Idle, in a block, or in a failed block.
pub(crate) fn status_of(session: &Session) -> TransactionStatus {
    if session.transaction_failed() {
        TransactionStatus::Error
    } else if session.in_transaction() {
        TransactionStatus::Transaction
    } else {
        TransactionStatus::Idle
    }
}

#[async_trait]
impl SimpleQueryHandler for ConnectionHandlers {
    async fn on_query<C>(&self, client: &mut C, query: Query) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if !matches!(client.state(), PgWireConnectionState::ReadyForQuery) {
            return Err(PgWireError::NotReadyForQuery);
        }
        client.set_state(PgWireConnectionState::QueryInProgress);
        let waiting_for_copy = self.run_simple_query(client, &query.query).await?;
        let status = self.transaction_status().await;
        client.set_transaction_status(status);
        if waiting_for_copy {
            // ReadyForQuery follows the COPY data (see `copy.rs`).
            client.set_state(PgWireConnectionState::CopyInProgress(false));
            client.flush().await?;
            return Ok(());
        }
        client.set_state(PgWireConnectionState::ReadyForQuery);
        send_ready_for_query(client, status).await?;
        Ok(())
    }

    /// Not used: [`SimpleQueryHandler::on_query`] above answers each statement as it completes.
    async fn do_query<C>(&self, _client: &mut C, _query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        Err(user_error(
            "ERROR",
            "XX000",
            "simple queries are answered by on_query",
        ))
    }
}
