//! Real delivery peers on 127.0.0.1 for the tests: an HTTP SMS/voice provider and an SMTP
//! server. Both speak their protocol over TCP and record what they receive.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// An HTTP provider: answers each request with the next scripted status (200 when the script
/// is empty) and records every request body, answered or not.
pub struct HttpPeer {
    pub addr: SocketAddr,
    script: Arc<Mutex<VecDeque<u16>>>,
    /// (status answered, body) of every request.
    pub requests: Arc<Mutex<Vec<(u16, String)>>>,
    task: tokio::task::AbortHandle,
}

impl HttpPeer {
    /// Starts on a free port.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let script: Arc<Mutex<VecDeque<u16>>> = Arc::default();
        let requests: Arc<Mutex<Vec<(u16, String)>>> = Arc::default();
        let (s, r) = (script.clone(), requests.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let (s, r) = (s.clone(), r.clone());
                tokio::spawn(async move {
                    let mut reader = BufReader::new(stream);
                    let mut length = 0usize;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let lower = line.to_ascii_lowercase();
                        if let Some(v) = lower.strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let mut body = vec![0u8; length];
                    if reader.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    let status = s.lock().unwrap().pop_front().unwrap_or(200);
                    r.lock()
                        .unwrap()
                        .push((status, String::from_utf8_lossy(&body).into_owned()));
                    let answer = format!(
                        "HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                    );
                    let _ = reader.get_mut().write_all(answer.as_bytes()).await;
                });
            }
        })
        .abort_handle();
        Self {
            addr,
            script,
            requests,
            task,
        }
    }

    /// Answers the next requests with these statuses.
    pub fn script(&self, statuses: &[u16]) {
        self.script.lock().unwrap().extend(statuses);
    }

    /// Answers every request with `status` from now on (a long script).
    pub fn answer_always(&self, status: u16) {
        let mut s = self.script.lock().unwrap();
        s.clear();
        s.extend(std::iter::repeat_n(status, 10_000));
    }

    /// Back to 200 for everything.
    pub fn recover(&self) {
        self.script.lock().unwrap().clear();
    }

    /// Bodies of the requests answered 2xx.
    pub fn delivered(&self) -> Vec<String> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|(s, _)| (200..300).contains(s))
            .map(|(_, b)| b.clone())
            .collect()
    }

    /// Waits (bounded) until `n` messages were delivered; returns them.
    pub async fn wait_delivered(&self, n: usize) -> Vec<String> {
        wait_for(|| {
            let d = self.delivered();
            (d.len() >= n).then_some(d)
        })
        .await
    }

    /// Waits (bounded) until `n` requests were received, answered or not.
    pub async fn wait_requests(&self, n: usize) -> Vec<(u16, String)> {
        wait_for(|| {
            let r = self.requests.lock().unwrap().clone();
            (r.len() >= n).then_some(r)
        })
        .await
    }

    /// The gateway table for the hsm-otp configuration.
    pub fn gateway_toml(&self, name: &str) -> String {
        format!(
            "[gateways.{name}]\nkind = \"http\"\nurl = \"http://{}/send\"\n\
             body = '{{\"to\": \"{{to}}\", \"text\": \"{{message}}\"}}'\n\
             headers = {{ Authorization = \"Bearer provider-secret-token\" }}\n",
            self.addr
        )
    }
}

impl Drop for HttpPeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// An SMTP server that accepts every message and records (recipient, raw data).
pub struct SmtpPeer {
    pub addr: SocketAddr,
    pub messages: Arc<Mutex<Vec<(String, String)>>>,
    task: tokio::task::AbortHandle,
}

impl SmtpPeer {
    /// Starts on a free port.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let messages: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
        let m = messages.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let m = m.clone();
                tokio::spawn(async move {
                    let mut conn = BufReader::new(stream);
                    let _ = conn.get_mut().write_all(b"220 test ESMTP\r\n").await;
                    let (mut rcpt, mut line) = (String::new(), String::new());
                    loop {
                        line.clear();
                        if conn.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
                        let reply: &[u8] = match verb.as_str() {
                            "EHLO" => b"250-test\r\n250 8BITMIME\r\n",
                            "HELO" | "MAIL" | "RSET" | "NOOP" => b"250 ok\r\n",
                            "RCPT" => {
                                rcpt = line.trim().to_owned();
                                b"250 ok\r\n"
                            }
                            "DATA" => {
                                let _ = conn.get_mut().write_all(b"354 go\r\n").await;
                                let mut data = String::new();
                                loop {
                                    line.clear();
                                    if conn.read_line(&mut line).await.unwrap_or(0) == 0 {
                                        return;
                                    }
                                    if line == ".\r\n" {
                                        break;
                                    }
                                    data.push_str(&line);
                                }
                                m.lock().unwrap().push((rcpt.clone(), data));
                                b"250 queued\r\n"
                            }
                            "QUIT" => {
                                let _ = conn.get_mut().write_all(b"221 bye\r\n").await;
                                return;
                            }
                            _ => b"502 no\r\n",
                        };
                        let _ = conn.get_mut().write_all(reply).await;
                    }
                });
            }
        })
        .abort_handle();
        Self {
            addr,
            messages,
            task,
        }
    }

    /// Waits (bounded) until `n` messages arrived.
    pub async fn wait_messages(&self, n: usize) -> Vec<(String, String)> {
        wait_for(|| {
            let m = self.messages.lock().unwrap().clone();
            (m.len() >= n).then_some(m)
        })
        .await
    }

    /// The gateway table for the hsm-otp configuration.
    pub fn gateway_toml(&self, name: &str) -> String {
        format!(
            "[gateways.{name}]\nkind = \"smtp\"\nhost = \"127.0.0.1\"\nport = {}\n\
             security = \"none\"\nfrom = \"Acme Bank <otp@bank.example>\"\n",
            self.addr.port()
        )
    }
}

impl Drop for SmtpPeer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Polls `f` every 50 ms for at most 20 s.
pub async fn wait_for<T>(mut f: impl FnMut() -> Option<T>) -> T {
    for _ in 0..400 {
        if let Some(v) = f() {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting");
}

/// The first run of `digits` consecutive ASCII digits in `text` (the code in a message).
pub fn code_in(text: &str, digits: usize) -> String {
    let bytes: Vec<char> = text.chars().collect();
    let mut run = String::new();
    for c in bytes {
        if c.is_ascii_digit() {
            run.push(c);
            if run.len() == digits {
                return run;
            }
        } else {
            run.clear();
        }
    }
    panic!("no {digits}-digit code in {text:?}");
}
