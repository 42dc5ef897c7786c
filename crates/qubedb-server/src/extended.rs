//! The extended query protocol: Parse, Bind, Describe, Execute, Close, Sync.
//!
//! pgwire frames the messages and, after an error, discards everything up to the next Sync; the state is
//! ours. A Parse stores a [`StatementEntry`] (the parsed statement and the parameter types the client
//! declared); the first Describe or Bind describes it through the engine
//! ([`qubedb::Session::describe_prepared_async`]: parameter types inferred from their use, result columns
//! from the plan) and keeps the description. A Bind decodes each parameter, text or binary, by that type
//! ([`crate::codec`]) into a [`PortalEntry`]. Execute runs the portal's statement on its first call and
//! sends at most `max_rows` rows (0: all); a portal stopped at its limit answers PortalSuspended and
//! carries on at the next Execute, from the same result stream. Sync ends the unnamed portal, and every
//! portal once no transaction block is open (portals live as long as their transaction, as in
//! PostgreSQL), and reports the session's real transaction status.
//!
//! As in PostgreSQL, the unnamed statement and portal are replaced by the next Parse / Bind of the
//! unnamed one, while a named one must be closed before its name is used again (42P05, 42P03).

use std::collections::{HashMap, VecDeque};
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use futures::{Sink, SinkExt};
use pgwire::api::portal::Portal;
use pgwire::api::query::ExtendedQueryHandler;
use pgwire::api::results::{DescribePortalResponse, DescribeStatementResponse, Response};
use pgwire::api::stmt::{NoopQueryParser, StoredStatement};
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, PgWireConnectionState, Type};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::data::{NoData, ParameterDescription};
use pgwire::messages::extendedquery::{
    Bind, BindComplete, Close, CloseComplete, Describe, Execute, Parse, ParseComplete,
    PortalSuspended, Sync as PgSync,
};
use pgwire::messages::response::{CommandComplete, EmptyQueryResponse, ReadyForQuery};
use qubedb::arrow::datatypes::SchemaRef;
use qubedb::{Param, PreparedStatement};

use crate::codec::{decode_parameter, parameter_type_name};
use crate::connection::{
    Connection, ConnectionHandlers, RowStream, column_formats, engine_error, row_description,
    send_notices, status_of, user_error,
};
use crate::copy::{send_copy_out, start_copy_in};
use crate::types::pg_type;

/// Most statement texts a connection remembers the parse of.
const PARSE_CACHE_ENTRIES_MAX: usize = 256;

/// What Parse made of a statement text before, so that a client sending the same text again (every
/// execution through an unnamed statement: psycopg, node-postgres, JDBC before its prepare threshold)
/// gets the same [`StatementEntry`]: its parse, its result description, and through its
/// `PreparedStatement` the cached plans of `sql/plan_cache.rs` and the fast path. An entry is used
/// only while the committed catalog has the version it was made under (any committed DDL changes it;
/// inside a transaction block nothing is cached), so a description never outlives the tables it
/// describes.
#[derive(Default)]
pub struct ParseCache {
    /// By text: the declared parameter types, the catalog version, the entry.
    entries: HashMap<String, (Vec<u32>, u64, Arc<StatementEntry>)>,
}

impl ParseCache {
    fn get(&self, query: &str, types: &[u32], version: u64) -> Option<Arc<StatementEntry>> {
        let (declared, made_under, entry) = self.entries.get(query)?;
        (declared == types && *made_under == version).then(|| entry.clone())
    }

    /// Drops `entry` if it is cached.
    fn forget(&mut self, entry: &StatementEntry) {
        self.entries
            .retain(|_, (_, _, cached)| !std::ptr::eq(Arc::as_ptr(cached), entry));
    }

    fn insert(&mut self, query: &str, types: &[u32], version: u64, entry: Arc<StatementEntry>) {
        if self.entries.len() >= PARSE_CACHE_ENTRIES_MAX {
            self.entries
                .retain(|_, (_, made_under, _)| *made_under == version);
            if self.entries.len() >= PARSE_CACHE_ENTRIES_MAX {
                self.entries.clear();
            }
        }
        self.entries
            .insert(query.to_string(), (types.to_vec(), version, entry));
    }
}

/// A statement stored by Parse.
pub struct StatementEntry {
    /// `None` for an empty query string.
    prepared: Option<PreparedStatement>,
    /// The parameter types Parse declared (`None` where it gave 0, "unspecified").
    declared: Vec<Option<Type>>,
    /// Filled by the first Describe or Bind.
    description: std::sync::OnceLock<Description>,
}

/// What a statement takes and returns, in wire types.
#[derive(Clone)]
struct Description {
    parameters: Vec<Type>,
    columns: Option<SchemaRef>,
}

/// A portal stored by Bind.
pub struct PortalEntry {
    statement: Arc<StatementEntry>,
    parameters: Vec<Param>,
    /// Per result column: binary format.
    binary: Vec<bool>,
    state: PortalState,
}

enum PortalState {
    /// Not executed yet.
    Ready,
    /// Executed; rows remain to fetch.
    Running(RowStream),
    /// Every row was sent (or the statement returns none).
    Done,
}

fn name_of(name: &Option<String>) -> String {
    name.clone().unwrap_or_default()
}

/// A statement's description, computed once.
async fn describe(
    connection: &mut Connection,
    entry: &StatementEntry,
) -> PgWireResult<Description> {
    if let Some(description) = entry.description.get() {
        return Ok(description.clone());
    }
    let Some(prepared) = &entry.prepared else {
        return Ok(Description {
            parameters: Vec::new(),
            columns: None,
        });
    };
    // Declared types the engine should plan with; text-like ones are left to inference, as an
    // `unknown` literal would be.
    let declared: Vec<Option<String>> = entry
        .declared
        .iter()
        .map(|declared| {
            declared
                .as_ref()
                .and_then(parameter_type_name)
                .map(str::to_string)
        })
        .collect();
    let found = connection
        .session
        .describe_prepared_async(prepared, &declared)
        .await
        .map_err(|error| engine_error(&error))?;
    // Described inside a transaction block, the columns may come from DDL that rolls back: the entry
    // is not handed to later Parses of its text.
    if connection.session.in_transaction() {
        connection.parsed.forget(entry);
    }
    let parameters = found
        .parameters
        .iter()
        .enumerate()
        .map(|(index, inferred)| {
            entry
                .declared
                .get(index)
                .cloned()
                .flatten()
                .or_else(|| inferred.as_deref().map(pg_type))
                .unwrap_or(Type::TEXT)
        })
        .collect();
    let description = Description {
        parameters,
        columns: found.columns,
    };
    let _ = entry.description.set(description.clone());
    Ok(description)
}

impl ConnectionHandlers {
    async fn parse(&self, message: Parse) -> PgWireResult<()> {
        let name = name_of(&message.name);
        let mut connection = self.lock().await?;
        if !name.is_empty() && connection.statements.contains_key(&name) {
            return Err(user_error(
                "ERROR",
                "42P05",
                format!("prepared statement \"{name}\" already exists"),
            ));
        }
        let version = connection
            .session
            .committed_catalog_version()
            .map_err(|error| engine_error(&error))?;
        if let Some(version) = version
            && let Some(entry) = connection
                .parsed
                .get(&message.query, &message.type_oids, version)
        {
            connection.statements.insert(name, entry);
            return Ok(());
        }
        let mut statements = connection
            .session
            .prepare_script(&message.query)
            .map_err(|error| engine_error(&error))?;
        if statements.len() > 1 {
            return Err(user_error(
                "ERROR",
                "42601",
                "cannot insert multiple commands into a prepared statement",
            ));
        }
        let declared = message
            .type_oids
            .iter()
            .map(|&oid| match oid {
                0 => Ok(None),
                oid => crate::types::type_of_oid(oid).map(Some).ok_or_else(|| {
                    user_error(
                        "ERROR",
                        "42704",
                        format!("type with OID {oid} does not exist"),
                    )
                }),
            })
            .collect::<PgWireResult<Vec<_>>>()?;
        let entry = Arc::new(StatementEntry {
            prepared: statements.pop(),
            declared,
            description: std::sync::OnceLock::new(),
        });
        if let Some(version) = version {
            connection
                .parsed
                .insert(&message.query, &message.type_oids, version, entry.clone());
        }
        connection.statements.insert(name, entry);
        Ok(())
    }

    async fn bind(&self, message: Bind) -> PgWireResult<()> {
        let statement_name = name_of(&message.statement_name);
        let portal_name = name_of(&message.portal_name);
        let mut connection = self.lock().await?;
        let statement = connection
            .statements
            .get(&statement_name)
            .cloned()
            .ok_or_else(|| missing_statement(&statement_name))?;
        if !portal_name.is_empty() && connection.portals.contains_key(&portal_name) {
            return Err(user_error(
                "ERROR",
                "42P03",
                format!("cursor \"{portal_name}\" already exists"),
            ));
        }
        let description = describe(&mut connection, &statement).await?;
        if message.parameters.len() != description.parameters.len() {
            return Err(user_error(
                "ERROR",
                "08P01",
                format!(
                    "bind message supplies {} parameters, but prepared statement \"{statement_name}\" requires {}",
                    message.parameters.len(),
                    description.parameters.len()
                ),
            ));
        }
        let parameter_binary =
            column_formats(&message.parameter_format_codes, message.parameters.len())?;
        let parameters = message
            .parameters
            .iter()
            .zip(&description.parameters)
            .zip(parameter_binary)
            .map(|((bytes, pg_type), binary)| {
                decode_parameter(bytes.as_deref(), binary, pg_type)
                    .map_err(|error| user_error("ERROR", error.code, error.message))
            })
            .collect::<PgWireResult<Vec<Param>>>()?;
        let column_count = description
            .columns
            .as_ref()
            .map_or(0, |schema| schema.fields().len());
        let binary = column_formats(&message.result_column_format_codes, column_count)?;
        connection.portals.insert(
            portal_name,
            PortalEntry {
                statement,
                parameters,
                binary,
                state: PortalState::Ready,
            },
        );
        Ok(())
    }

    async fn describe_message<C>(&self, client: &mut C, message: Describe) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = name_of(&message.name);
        let mut connection = self.lock().await?;
        let (columns, binary) = match message.target_type {
            b'S' => {
                let statement = connection
                    .statements
                    .get(&name)
                    .cloned()
                    .ok_or_else(|| missing_statement(&name))?;
                let description = describe(&mut connection, &statement).await?;
                client
                    .feed(PgWireBackendMessage::ParameterDescription(
                        ParameterDescription::new(
                            description.parameters.iter().map(Type::oid).collect(),
                        ),
                    ))
                    .await?;
                (description.columns, Vec::new())
            }
            b'P' => {
                let portal = connection
                    .portals
                    .get(&name)
                    .ok_or_else(|| missing_portal(&name))?;
                let statement = portal.statement.clone();
                let binary = portal.binary.clone();
                let description = describe(&mut connection, &statement).await?;
                (description.columns, binary)
            }
            other => {
                return Err(user_error(
                    "ERROR",
                    "08P01",
                    format!("invalid DESCRIBE message subtype {other}"),
                ));
            }
        };
        match columns {
            Some(schema) => {
                client
                    .feed(PgWireBackendMessage::RowDescription(row_description(
                        &schema, &binary,
                    )))
                    .await?
            }
            None => {
                client
                    .feed(PgWireBackendMessage::NoData(NoData::new()))
                    .await?
            }
        }
        Ok(())
    }

    async fn execute<C>(&self, client: &mut C, message: Execute) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = name_of(&message.name);
        let limit = usize::try_from(message.max_rows).unwrap_or(0);
        let mut guard = self.lock().await?;
        let connection = &mut *guard;
        let portal = connection
            .portals
            .get_mut(&name)
            .ok_or_else(|| missing_portal(&name))?;
        let Some(prepared) = &portal.statement.prepared else {
            client
                .feed(PgWireBackendMessage::EmptyQueryResponse(
                    EmptyQueryResponse::new(),
                ))
                .await?;
            return Ok(());
        };
        if let PortalState::Ready = portal.state {
            if prepared.is_copy_from_stdin() {
                portal.state = PortalState::Done;
                let statement = prepared.clone();
                start_copy_in(client, connection, statement, VecDeque::new(), true).await?;
                client.set_state(PgWireConnectionState::CopyInProgress(true));
                return Ok(());
            }
            let result = connection
                .session
                .execute_prepared_async(prepared, &portal.parameters)
                .await;
            let result = match result {
                Ok(result) => result,
                Err(error) => {
                    portal.state = PortalState::Done;
                    return Err(engine_error(&error));
                }
            };
            send_notices(client, result.notices()).await?;
            if result.copy_out().is_some() {
                portal.state = PortalState::Done;
                return send_copy_out(client, result).await;
            }
            portal.state = PortalState::Running(RowStream::new(result, &portal.binary));
        }
        let PortalState::Running(rows) = &mut portal.state else {
            // Run to completion before: nothing more, as PostgreSQL answers.
            client
                .feed(PgWireBackendMessage::CommandComplete(CommandComplete::new(
                    "SELECT 0".into(),
                )))
                .await?;
            return Ok(());
        };
        let mut count = 0;
        loop {
            if limit > 0 && count == limit {
                client
                    .feed(PgWireBackendMessage::PortalSuspended(PortalSuspended::new()))
                    .await?;
                return Ok(());
            }
            let row = match rows.next_row().await {
                Ok(row) => row,
                Err(error) => {
                    portal.state = PortalState::Done;
                    return Err(error);
                }
            };
            match row {
                Some(row) => {
                    client.feed(PgWireBackendMessage::DataRow(row)).await?;
                    count += 1;
                }
                None => break,
            }
        }
        let tag = rows.tag(count);
        portal.state = PortalState::Done;
        client
            .feed(PgWireBackendMessage::CommandComplete(CommandComplete::new(
                tag,
            )))
            .await?;
        Ok(())
    }

    async fn sync<C>(&self, client: &mut C) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let status = {
            let mut connection = self.lock().await?;
            connection.portals.remove("");
            if !connection.session.in_transaction() {
                connection.portals.clear();
            }
            status_of(&connection.session)
        };
        client.set_state(PgWireConnectionState::ReadyForQuery);
        client.set_transaction_status(status);
        client
            .send(PgWireBackendMessage::ReadyForQuery(ReadyForQuery::new(
                status,
            )))
            .await?;
        Ok(())
    }
}

fn missing_statement(name: &str) -> PgWireError {
    user_error(
        "ERROR",
        "26000",
        format!("prepared statement \"{name}\" does not exist"),
    )
}

fn missing_portal(name: &str) -> PgWireError {
    user_error(
        "ERROR",
        "34000",
        format!("portal \"{name}\" does not exist"),
    )
}

#[async_trait]
impl ExtendedQueryHandler for ConnectionHandlers {
    type Statement = String;
    type QueryParser = NoopQueryParser;

    /// Not used: parsing is the engine's, in [`ExtendedQueryHandler::on_parse`] below.
    fn query_parser(&self) -> Arc<Self::QueryParser> {
        Arc::new(NoopQueryParser::new())
    }

    async fn on_parse<C>(&self, client: &mut C, message: Parse) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.parse(message).await?;
        client
            .feed(PgWireBackendMessage::ParseComplete(ParseComplete::new()))
            .await?;
        Ok(())
    }

    async fn on_bind<C>(&self, client: &mut C, message: Bind) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.bind(message).await?;
        client
            .feed(PgWireBackendMessage::BindComplete(BindComplete::new()))
            .await?;
        Ok(())
    }

    async fn on_execute<C>(&self, client: &mut C, message: Execute) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.execute(client, message).await
    }

    async fn on_describe<C>(&self, client: &mut C, message: Describe) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.describe_message(client, message).await
    }

    async fn on_sync<C>(&self, client: &mut C, _message: PgSync) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.sync(client).await
    }

    async fn on_close<C>(&self, client: &mut C, message: Close) -> PgWireResult<()>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let name = name_of(&message.name);
        {
            let mut connection = self.lock().await?;
            match message.target_type {
                b'S' => {
                    connection.statements.remove(&name);
                }
                b'P' => {
                    connection.portals.remove(&name);
                }
                other => {
                    return Err(user_error(
                        "ERROR",
                        "08P01",
                        format!("invalid CLOSE message subtype {other}"),
                    ));
                }
            }
        }
        client
            .feed(PgWireBackendMessage::CloseComplete(CloseComplete::new()))
            .await?;
        Ok(())
    }

    /// Not used: the handlers above answer every message.
    async fn do_describe_statement<C>(
        &self,
        _client: &mut C,
        _target: &StoredStatement<Self::Statement>,
    ) -> PgWireResult<DescribeStatementResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        Err(unused())
    }

    /// Not used: the handlers above answer every message.
    async fn do_describe_portal<C>(
        &self,
        _client: &mut C,
        _target: &Portal<Self::Statement>,
    ) -> PgWireResult<DescribePortalResponse>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        Err(unused())
    }

    /// Not used: the handlers above answer every message.
    async fn do_query<C>(
        &self,
        _client: &mut C,
        _portal: &Portal<Self::Statement>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        Err(unused())
    }
}

fn unused() -> PgWireError {
    user_error(
        "ERROR",
        "XX000",
        "extended-query messages are answered by the on_* handlers",
    )
}
