//! The REST fallback (design "REST API Fallback Endpoints"): the same
//! calls as gRPC, over plain HTTP for peers or networks where gRPC does
//! not get through. Discovery and notification bodies are the proto
//! messages as JSON; anti-entropy posts its protobuf message as is
//! (`application/x-protobuf`), since its hash lists are bytes.
use std::time::Duration;

use prost::Message;
use reqwest::StatusCode;
use sorcha_proto::discovery::{
    PeerListRequest, PeerListResponse, PingRequest, PingResponse, RegisterPeerRequest,
    RegisterPeerResponse,
};
use sorcha_proto::transaction::{
    NotificationAck, SyncRequest, SyncResponse, TransactionNotification,
};

use std::collections::HashMap;
use std::sync::Mutex;

use super::Connector;
use crate::{Error, Result};

pub const PROTOBUF: &str = "application/x-protobuf";

/// HTTP clients by expected server peer id: with mutual TLS each checks
/// that the server is that peer (`None`: by host name).
pub struct RestClient {
    connector: Connector,
    clients: Mutex<HashMap<Option<String>, reqwest::Client>>,
}

/// Every REST call sets its own, shorter deadline.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(600);

impl RestClient {
    pub fn new(connector: Connector) -> Self {
        RestClient {
            connector,
            clients: Mutex::new(HashMap::new()),
        }
    }

    fn http(&self, peer_id: Option<&str>) -> Result<reqwest::Client> {
        let key = peer_id.map(str::to_owned);
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = clients.get(&key) {
            return Ok(c.clone());
        }
        let c = self.connector.http_client(CLIENT_TIMEOUT, peer_id)?;
        clients.insert(key, c.clone());
        Ok(c)
    }

    /// Forgets the client for a peer no longer talked to.
    pub fn forget(&self, peer_id: Option<&str>) {
        self.clients
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&peer_id.map(str::to_owned));
    }

    pub async fn ping(
        &self,
        url: &str,
        peer_id: Option<&str>,
        req: &PingRequest,
        timeout: Duration,
    ) -> Result<PingResponse> {
        let call = self
            .http(peer_id)?
            .get(format!("{url}/api/v1/peers/ping"))
            .query(&[("peer_id", req.peer_id.as_str())])
            .timeout(timeout);
        json(url, call.send().await).await
    }

    pub async fn peer_list(
        &self,
        url: &str,
        peer_id: Option<&str>,
        req: &PeerListRequest,
        timeout: Duration,
    ) -> Result<PeerListResponse> {
        let max = req.max_peers.to_string();
        let call = self
            .http(peer_id)?
            .get(format!("{url}/api/v1/peers/list"))
            .query(&[
                ("requesting_peer_id", req.requesting_peer_id.as_str()),
                ("max_peers", max.as_str()),
            ])
            .timeout(timeout);
        json(url, call.send().await).await
    }

    pub async fn register(
        &self,
        url: &str,
        peer_id: Option<&str>,
        req: &RegisterPeerRequest,
        timeout: Duration,
    ) -> Result<RegisterPeerResponse> {
        let call = self
            .http(peer_id)?
            .post(format!("{url}/api/v1/peers/register"))
            .json(req)
            .timeout(timeout);
        json(url, call.send().await).await
    }

    pub async fn notify(
        &self,
        url: &str,
        peer_id: Option<&str>,
        note: &TransactionNotification,
        timeout: Duration,
    ) -> Result<NotificationAck> {
        let call = self
            .http(peer_id)?
            .post(format!("{url}/api/v1/transactions/notify"))
            .json(note)
            .timeout(timeout);
        json(url, call.send().await).await
    }

    /// The transaction's bytes, or `None` when the peer does not hold it.
    pub async fn get_transaction(
        &self,
        url: &str,
        peer_id: Option<&str>,
        hash_hex: &str,
        timeout: Duration,
    ) -> Result<Option<Vec<u8>>> {
        let call = self
            .http(peer_id)?
            .get(format!("{url}/api/v1/transactions/{hash_hex}"))
            .timeout(timeout);
        let resp = call.send().await.map_err(|e| unreachable(url, &e))?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let resp = ok(url, resp).await?;
        let body = resp.bytes().await.map_err(|e| unreachable(url, &e))?;
        Ok(Some(body.to_vec()))
    }

    pub async fn sync(
        &self,
        url: &str,
        peer_id: Option<&str>,
        req: &SyncRequest,
        timeout: Duration,
    ) -> Result<SyncResponse> {
        let call = self
            .http(peer_id)?
            .post(format!("{url}/api/v1/transactions/sync"))
            .header(reqwest::header::CONTENT_TYPE, PROTOBUF)
            .body(req.encode_to_vec())
            .timeout(timeout);
        let resp = ok(url, call.send().await.map_err(|e| unreachable(url, &e))?).await?;
        let body = resp.bytes().await.map_err(|e| unreachable(url, &e))?;
        SyncResponse::decode(body).map_err(|e| Error::PeerRejected {
            peer: url.to_owned(),
            message: format!("undecodable sync answer: {e}"),
        })
    }
}

fn unreachable(url: &str, e: &reqwest::Error) -> Error {
    Error::PeerUnreachable {
        peer: url.to_owned(),
        message: e.to_string(),
    }
}

/// The response if it succeeded; otherwise the peer's error message.
async fn ok(url: &str, resp: reqwest::Response) -> Result<reqwest::Response> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let body = resp.text().await.unwrap_or_default();
    let message = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        .unwrap_or(body);
    let message = format!("HTTP {status}: {message}");
    Err(if status.is_server_error() {
        Error::PeerUnreachable {
            peer: url.to_owned(),
            message,
        }
    } else {
        Error::PeerRejected {
            peer: url.to_owned(),
            message,
        }
    })
}

async fn json<T: serde::de::DeserializeOwned>(
    url: &str,
    sent: reqwest::Result<reqwest::Response>,
) -> Result<T> {
    let resp = ok(url, sent.map_err(|e| unreachable(url, &e))?).await?;
    resp.json().await.map_err(|e| Error::PeerRejected {
        peer: url.to_owned(),
        message: format!("undecodable answer: {e}"),
    })
}
