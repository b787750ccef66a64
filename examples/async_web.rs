//! The README's web handler ("Async"): an axum route that loads an
//! account, runs a command and saves it, through the async facade, so that
//! the runtime's worker threads never wait for the database.
//!
//! ```text
//! cargo run --example async_web                       # in memory
//! DB_URI=sqlite:///tmp/bank.db cargo run --example async_web
//! ```
//!
//! It serves on a port of 127.0.0.1 that the system picks, sends itself a
//! few requests over a plain TCP connection, prints the answers, and stops.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

// README: begin
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use eventsourcing::AsyncApplication;
use eventsourcing::prelude::*;

/// A bank account.
#[aggregate]
#[derive(Debug, Default)]
pub struct Account {
    balance: u64,
}

#[aggregate]
impl Account {
    /// Opens an account.
    #[created(Opened)]
    pub fn open(&mut self) {}

    /// Pays money in.
    #[event(Deposited)]
    pub fn deposit(&mut self, amount: u64) {
        self.balance += amount;
    }
}

#[derive(serde::Deserialize)]
struct Deposit {
    amount: u64,
}

#[derive(serde::Serialize)]
struct Balance {
    balance: u64,
    version: u64,
}

/// `POST /accounts/{id}/deposits`: load, run the command, save.
async fn deposit(
    State(app): State<AsyncApplication>,
    Path(id): Path<Uuid>,
    Json(deposit): Json<Deposit>,
) -> Result<Json<Balance>, Failure> {
    let mut account: Account = app.repository().get(id).await?;
    account.deposit(deposit.amount);
    let (account, _) = app.save(account).await?;
    Ok(Json(Balance {
        balance: account.balance,
        version: account.version(),
    }))
}

/// An error as an HTTP answer.
struct Failure(Error);

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        Failure(error)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let status = match self.0 {
            Error::NotFound { .. } => StatusCode::NOT_FOUND,
            // Another request changed the account first: the client may retry.
            Error::Concurrency { .. } => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, self.0.to_string()).into_response()
    }
}

fn router(app: AsyncApplication) -> Router {
    Router::new()
        .route("/accounts/{id}/deposits", post(deposit))
        .with_state(app)
}
// README: end

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Sends one request and returns the status line and the body.
async fn post_json(
    address: SocketAddr,
    path: &str,
    body: &str,
) -> Result<(String, String), BoxError> {
    let mut stream = TcpStream::connect(address).await?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await?;
    let status = response.lines().next().unwrap_or_default().to_owned();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default();
    Ok((status, body))
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let app = Application::from_env()?.into_async();
    let (account, _) = app.save(Account::open()).await?;
    let id = account.id();

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let routes = router(app.clone());
    let server = tokio::spawn(async move { axum::serve(listener, routes).await });

    let path = format!("/accounts/{id}/deposits");
    for amount in [30, 12] {
        let (status, body) =
            post_json(address, &path, &format!(r#"{{"amount":{amount}}}"#)).await?;
        println!("deposit {amount}: {status} {body}");
        if !status.contains(" 200 ") {
            return Err(format!("the deposit failed: {status} {body}").into());
        }
    }
    let missing = format!("/accounts/{}/deposits", Uuid::new_v4());
    let (status, body) = post_json(address, &missing, r#"{"amount":1}"#).await?;
    println!("unknown account: {status} {body}");
    if !status.contains(" 404 ") {
        return Err(format!("an unknown account should be 404: {status}").into());
    }

    let account: Account = app.repository().get(id).await?;
    println!(
        "balance {} at version {}",
        account.balance,
        account.version()
    );
    if (account.balance, account.version()) != (42, 3) {
        return Err("the deposits were not all saved".into());
    }
    server.abort();
    Ok(())
}
