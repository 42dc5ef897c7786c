//! One client connection: its [`Session`], the startup exchange and the simple-query cycle.
//!
//! pgwire drives the socket and calls these handlers. Startup is `trust`: the server parameters a
//! client expects (`server_version`, `client_encoding`, `DateStyle`, `integer_datetimes`,
//! `standard_conforming_strings`, `TimeZone`, ...) are sent with their QubeDB values. A Query message
//! runs its statements one by one, each answered as it completes; the first error ends the message.
//! ReadyForQuery reports the session's own transaction state (idle, in a block, or in a failed block),
//! not one inferred from the statements' kinds.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::{BufMut, BytesMut};
use futures::{Sink, SinkExt, stream};
use pgwire::api::auth::{
    ServerParameterProvider, StartupHandler, finish_authentication, protocol_negotiation,
    save_startup_parameters_to_metadata,
};
use pgwire::api::query::{
    SimpleQueryHandler, send_execution_response, send_query_response, send_ready_for_query,
};
use pgwire::api::results::{FieldFormat, FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, PgWireConnectionState, PgWireServerHandlers};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::data::DataRow;
use pgwire::messages::response::{EmptyQueryResponse, TransactionStatus};
use pgwire::messages::simplequery::Query;
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use qubedb::{Session, StatementOutcome};
use tokio::sync::Mutex;

use crate::types::pg_type;

/// What pgwire asks for the handlers of one connection.
pub struct ConnectionFactory {
    handlers: Arc<ConnectionHandlers>,
}

impl ConnectionFactory {
    /// `over_limit`: the connection came in past `--max-connections`, and startup refuses it.
    pub fn new(session: Session, over_limit: bool) -> ConnectionFactory {
        ConnectionFactory {
            handlers: Arc::new(ConnectionHandlers {
                session: Mutex::new(session),
                over_limit,
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
}

/// The handlers of one connection, around its session.
pub struct ConnectionHandlers {
    session: Mutex<Session>,
    over_limit: bool,
}

/// The ParameterStatus values sent at startup.
struct ServerParameters;

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
            ("is_superuser".into(), "on".into()),
            ("session_authorization".into(), user),
            ("application_name".into(), application_name),
            ("default_transaction_read_only".into(), "off".into()),
            ("in_hot_standby".into(), "off".into()),
        ]))
    }
}

fn user_error(severity: &str, code: &str, message: impl Into<String>) -> PgWireError {
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
        if let PgWireFrontendMessage::Startup(startup) = message {
            protocol_negotiation(client, &startup).await?;
            save_startup_parameters_to_metadata(client, &startup);
            if self.over_limit {
                return Err(user_error(
                    "FATAL",
                    "53300",
                    "sorry, too many clients already",
                ));
            }
            if let Some(user) = client.metadata().get("user") {
                self.session.lock().await.set_user(user);
            }
            finish_authentication(client, &ServerParameters).await?;
        }
        Ok(())
    }
}

/// The wire form of a QubeDB error.
fn error_info(error: &qubedb::Error) -> ErrorInfo {
    let mut info = ErrorInfo::new(
        "ERROR".into(),
        error.code.to_string(),
        error.message.clone(),
    );
    info.detail = error.detail.clone();
    info.hint = error.hint.clone();
    info.position = error.position.map(|position| position.to_string());
    info
}

/// A statement's rows as a QueryResponse in text format; `None` for a statement without rows.
fn query_response(outcome: &StatementOutcome) -> Option<QueryResponse> {
    let schema = outcome.schema.as_ref()?;
    let fields: Vec<FieldInfo> = schema
        .fields()
        .iter()
        .map(|field| {
            FieldInfo::new(
                field.name().clone(),
                None,
                None,
                pg_type(field),
                FieldFormat::Text,
            )
        })
        .collect();
    let column_count = fields.len() as i16;
    let rows: Vec<PgWireResult<DataRow>> = outcome
        .text_rows()
        .into_iter()
        .map(|row| {
            let mut data = BytesMut::new();
            for value in row {
                match value {
                    None => data.put_i32(-1),
                    Some(text) => {
                        data.put_i32(text.len() as i32);
                        data.put_slice(text.as_bytes());
                    }
                }
            }
            Ok(DataRow::new(data, column_count))
        })
        .collect();
    let mut response = QueryResponse::new(Arc::new(fields), stream::iter(rows));
    // PostgreSQL's tag for rows counts them itself ("SELECT 3"); for DML with RETURNING it is the
    // DML's tag, which already carries the count.
    let command = outcome.tag.split(' ').next().unwrap_or("SELECT");
    response.set_command_tag(if command == "SELECT" {
        "SELECT"
    } else {
        &outcome.tag
    });
    Some(response)
}

impl ConnectionHandlers {
    /// Runs the statements of one Query message, answering each as it completes.
    async fn run_simple_query<C>(&self, client: &mut C, sql: &str) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut session = self.session.lock().await;
        let statements = match session.prepare_script(sql) {
            Ok(statements) => statements,
            Err(error) => {
                client
                    .feed(PgWireBackendMessage::ErrorResponse(
                        error_info(&error).into(),
                    ))
                    .await?;
                return Ok(());
            }
        };
        if statements.is_empty() {
            client
                .feed(PgWireBackendMessage::EmptyQueryResponse(
                    EmptyQueryResponse::new(),
                ))
                .await?;
            return Ok(());
        }
        for statement in &statements {
            let outcome = match session.execute_prepared_async(statement, &[]).await {
                Ok(result) => result.collect().await,
                Err(error) => Err(error),
            };
            match outcome {
                Ok(outcome) => match query_response(&outcome) {
                    Some(response) => send_query_response(client, response, true).await?,
                    None => send_execution_response(client, Tag::new(&outcome.tag)).await?,
                },
                Err(error) => {
                    client
                        .feed(PgWireBackendMessage::ErrorResponse(
                            error_info(&error).into(),
                        ))
                        .await?;
                    break;
                }
            }
        }
        Ok(())
    }

    async fn transaction_status(&self) -> TransactionStatus {
        let session = self.session.lock().await;
        if session.transaction_failed() {
            TransactionStatus::Error
        } else if session.in_transaction() {
            TransactionStatus::Transaction
        } else {
            TransactionStatus::Idle
        }
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
        self.run_simple_query(client, &query.query).await?;
        let status = self.transaction_status().await;
        client.set_state(PgWireConnectionState::ReadyForQuery);
        client.set_transaction_status(status);
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
