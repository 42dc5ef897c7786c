//! COPY over the wire: `COPY ... FROM STDIN` receives CopyData messages, `COPY ... TO STDOUT` sends them.
//!
//! FROM STDIN: the statement is checked first ([`qubedb::Session::copy_in_columns_async`]: table, columns,
//! options, transaction state), so a bad COPY fails before the client sends anything; then
//! CopyInResponse, and the connection waits in pgwire's copy state. CopyData is gathered in memory and
//! CopyDone runs the COPY through the engine as one statement (all rows or none). In a simple Query the
//! statements after the COPY run next and ReadyForQuery follows; in the extended protocol the client's
//! Sync does. CopyFail fails the statement, which aborts an open transaction block as any failed
//! statement does.
//!
//! TO STDOUT: the engine returns the rows marked with their [`qubedb::CopyEncoder`]; each row goes out as
//! one CopyData (as PostgreSQL sends them, and as psycopg reads them), then CopyDone and `COPY n`.

use std::collections::VecDeque;
use std::fmt::Debug;

use async_trait::async_trait;
use bytes::Bytes;
use futures::{Sink, SinkExt};
use pgwire::api::ClientInfo;
use pgwire::api::copy::CopyHandler;
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use pgwire::messages::copy::{CopyData, CopyDone, CopyFail, CopyInResponse, CopyOutResponse};
use pgwire::messages::response::CommandComplete;
use qubedb::{PreparedStatement, QueryResult};

use crate::connection::{
    Connection, ConnectionHandlers, engine_error, error_info, run_statements, status_of, user_error,
};

/// A `COPY ... FROM STDIN` waiting for its data.
pub struct PendingCopy {
    statement: PreparedStatement,
    data: Vec<u8>,
    /// The statements of the Query message after the COPY (simple protocol only).
    remaining: VecDeque<PreparedStatement>,
    /// Started by Execute rather than Query.
    extended: bool,
}

/// Checks `statement` and asks the client for its data (CopyInResponse).
pub(crate) async fn start_copy_in<C>(
    client: &mut C,
    connection: &mut Connection,
    statement: PreparedStatement,
    remaining: VecDeque<PreparedStatement>,
    extended: bool,
) -> PgWireResult<()>
where
    C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let (columns, binary) = connection
        .session
        .copy_in_columns_async(&statement)
        .await
        .map_err(|error| engine_error(&error))?;
    let format = i8::from(binary);
    client
        .feed(PgWireBackendMessage::CopyInResponse(CopyInResponse::new(
            format,
            columns as i16,
            vec![i16::from(format); columns],
        )))
        .await?;
    // The client sends nothing more until it has this.
    client.flush().await?;
    connection.copy = Some(PendingCopy {
        statement,
        data: Vec::new(),
        remaining,
        extended,
    });
    Ok(())
}

/// Sends the rows of a `COPY ... TO STDOUT` as COPY data, then CopyDone and CommandComplete.
pub(crate) async fn send_copy_out<C>(client: &mut C, mut result: QueryResult) -> PgWireResult<()>
where
    C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
    C::Error: Debug,
    PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
{
    let encoder = result
        .copy_out()
        .cloned()
        .ok_or_else(|| user_error("ERROR", "XX000", "not the result of COPY TO STDOUT"))?;
    let columns = encoder.column_count();
    let format = i8::from(encoder.is_binary());
    client
        .feed(PgWireBackendMessage::CopyOutResponse(CopyOutResponse::new(
            format,
            columns as i16,
            vec![i16::from(format); columns],
        )))
        .await?;
    // A text HEADER line is a message of its own; the binary header goes out with the first row
    // (or the trailer), as PostgreSQL sends it and clients such as psycopg read it.
    let mut binary_header = None;
    if let Some(header) = encoder.header() {
        if encoder.is_binary() {
            binary_header = Some(header);
        } else {
            client
                .feed(PgWireBackendMessage::CopyData(CopyData::new(Bytes::from(
                    header,
                ))))
                .await?;
        }
    }
    let with_header = |header: &mut Option<Vec<u8>>, line: Vec<u8>| match header.take() {
        Some(mut header) => {
            header.extend_from_slice(&line);
            header
        }
        None => line,
    };
    while let Some(batch) = result
        .next_batch_async()
        .await
        .map_err(|error| engine_error(&error))?
    {
        let lines = encoder
            .encode_rows(&batch)
            .map_err(|error| engine_error(&error))?;
        for line in lines {
            let line = with_header(&mut binary_header, line);
            client
                .feed(PgWireBackendMessage::CopyData(CopyData::new(Bytes::from(
                    line,
                ))))
                .await?;
        }
    }
    if let Some(trailer) = encoder.trailer() {
        let trailer = with_header(&mut binary_header, trailer);
        client
            .feed(PgWireBackendMessage::CopyData(CopyData::new(Bytes::from(
                trailer,
            ))))
            .await?;
    }
    client
        .feed(PgWireBackendMessage::CopyDone(CopyDone::new()))
        .await?;
    client
        .feed(PgWireBackendMessage::CommandComplete(CommandComplete::new(
            result.tag(),
        )))
        .await?;
    Ok(())
}

fn no_copy_in_progress() -> PgWireError {
    user_error("ERROR", "08P01", "no COPY FROM STDIN in progress")
}

#[async_trait]
impl CopyHandler for ConnectionHandlers {
    async fn on_copy_data<C>(&self, _client: &mut C, copy_data: CopyData) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut connection = self.lock().await?;
        let pending = connection.copy.as_mut().ok_or_else(no_copy_in_progress)?;
        pending.data.extend_from_slice(&copy_data.data);
        Ok(())
    }

    async fn on_copy_done<C>(&self, client: &mut C, _done: CopyDone) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut guard = self.lock().await?;
        let connection = &mut *guard;
        let pending = connection.copy.take().ok_or_else(no_copy_in_progress)?;
        let outcome = connection
            .session
            .copy_in_prepared_async(&pending.statement, &pending.data)
            .await;
        if pending.extended {
            let outcome = outcome.map_err(|error| engine_error(&error))?;
            client
                .feed(PgWireBackendMessage::CommandComplete(CommandComplete::new(
                    outcome.tag,
                )))
                .await?;
            return Ok(());
        }
        // Simple protocol: answer here and let pgwire send ReadyForQuery with the status set below.
        match outcome {
            Ok(outcome) => {
                client
                    .feed(PgWireBackendMessage::CommandComplete(CommandComplete::new(
                        outcome.tag,
                    )))
                    .await?;
                run_statements(client, connection, pending.remaining, false).await?;
            }
            Err(error) => {
                client
                    .feed(PgWireBackendMessage::ErrorResponse(
                        error_info(&error).into(),
                    ))
                    .await?;
            }
        }
        client.set_transaction_status(status_of(&connection.session));
        Ok(())
    }

    async fn on_copy_fail<C>(&self, client: &mut C, fail: CopyFail) -> PgWireError
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut connection = match self.lock().await {
            Ok(connection) => connection,
            Err(error) => return error,
        };
        connection.copy = None;
        connection.session.fail_statement();
        client.set_transaction_status(status_of(&connection.session));
        user_error(
            "ERROR",
            "57014",
            format!("COPY from stdin failed: {}", fail.message),
        )
    }
}
