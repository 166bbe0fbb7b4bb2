//! Channels: authenticating a caller twice (certificate + channel key, promise 6), and the
//! administration of channels and their keys (promise 2).

use std::net::IpAddr;

use ipnet::IpNet;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::token::{found, Token};
use super::{Error, Missing, Services};
use crate::domain::SecretString;
use crate::hsm::CHANNEL_MAC_VERSION;
use crate::store::{Candidates, ChannelFound, ChannelRow, Naming, NewChannel};

/// Prefix that makes channel keys recognisable (in a leaked file, say) without a lookup.
const KEY_PREFIX: &str = "hok_";
/// Random bytes in a channel key: 160 bits, above the 128 of promise 2.
const KEY_BYTES: usize = 20;

/// An authenticated calling application.
#[derive(Clone, Debug)]
pub struct Channel {
    /// Identifier; every row a channel can see carries it.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// May receive codes in API answers.
    pub may_receive_otp: bool,
    /// Account number (UnityVox's `accountnumber`).
    pub account_number: Option<String>,
}

/// How a caller proves which channel it is, beside its client certificate.
#[derive(Clone, Copy, Debug)]
pub enum Credential<'a> {
    /// The channel key alone (`X-Channel-Key`, mPass's `apikey`).
    Key(&'a str),
    /// The channel's name and key (MOSIP's client id and secret, PhenixID's Basic).
    NamedKey {
        /// Channel name.
        name: &'a str,
        /// Channel key.
        key: &'a str,
    },
    /// The channel's account number and key (UnityVox).
    AccountKey {
        /// Account number.
        account: &'a str,
        /// Channel key.
        key: &'a str,
    },
    /// A session token from [`Services::issue_session`] (MOSIP's `Authorization`).
    Session(&'a str),
}

/// Prefix of session tokens, and the MAC's domain separator.
const SESSION_PREFIX: &str = "hos1";

/// What a new channel may do, besides authenticating.
#[derive(Clone, Debug, Default)]
pub struct ChannelOptions {
    /// Accept its key only with these client certificates (SHA-256 hex); empty: any.
    pub client_cert_sha256: Vec<String>,
    /// Accept its key only from these networks; empty: any.
    pub allow_ip: Vec<String>,
    /// May receive codes in answers (`delivery: "response"`).
    pub may_receive_otp: bool,
    /// How many messages it may send; `None`: no budget.
    pub message_budget: Option<i64>,
}

/// The authenticated caller of one request.
#[derive(Clone, Debug)]
pub struct Caller {
    /// Its channel.
    pub channel: Channel,
    /// The request's id, written to the audit trail.
    pub request_id: String,
}

/// A channel as shown to a security officer, with its new key where one was just made.
#[derive(Debug, serde::Serialize)]
pub struct NewChannelKey {
    /// The channel's name.
    pub name: String,
    /// The key; shown once, never stored.
    #[serde(serialize_with = "expose")]
    pub channel_key: SecretString,
}

impl Credential<'_> {
    /// The channel key it holds (none for a session token).
    pub fn key(&self) -> Option<&str> {
        match self {
            Self::Key(key) | Self::NamedKey { key, .. } | Self::AccountKey { key, .. } => Some(key),
            Self::Session(_) => None,
        }
    }

    /// The channel of its key, if the name or account number it also gives is that
    /// channel's.
    fn matching(&self, row: ChannelRow) -> Result<ChannelRow, Error> {
        let mismatch = match self {
            Self::NamedKey { name, .. } => {
                (row.name != *name).then_some("channel name does not match the key")
            }
            Self::AccountKey { account, .. } => (row.account_number.as_deref() != Some(*account))
                .then_some("account number does not match the key"),
            Self::Key(_) | Self::Session(_) => None,
        };
        match mismatch {
            Some(reason) => {
                tracing::info!(reason, "caller refused");
                Err(Error::Unauthenticated)
            }
            None => Ok(row),
        }
    }
}

fn expose<S: serde::Serializer>(k: &SecretString, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(k.expose())
}

impl Services {
    /// Resolves the caller's channel from a credential, its client certificate and its
    /// source address. Every refusal is the same `Unauthenticated`; the reason is logged.
    pub fn authenticate(
        &self,
        credential: Option<Credential<'_>>,
        cert_sha256: Option<&str>,
        peer: Option<IpAddr>,
    ) -> Result<Channel, Error> {
        let row = match credential {
            None => {
                tracing::info!(reason = "no credential", "caller refused");
                return Err(Error::Unauthenticated);
            }
            Some(Credential::Session(session)) => self.channel_of_session(session)?,
            Some(keyed) => {
                let key = keyed.key().ok_or(Error::Unauthenticated)?;
                keyed.matching(self.channel_of_key(key)?)?
            }
        };
        admit(row, cert_sha256, peer)
    }

    /// [`Self::authenticate`] for a credential that holds a channel key, from an async task:
    /// the key's MAC is computed here, in the HSM, and the grouped channel read is awaited
    /// without a blocking thread. A session token is refused here: it is checked by
    /// [`Self::authenticate`].
    pub async fn authenticate_keyed(
        &self,
        credential: Credential<'_>,
        cert_sha256: Option<&str>,
        peer: Option<IpAddr>,
    ) -> Result<Channel, Error> {
        let key = credential
            .key()
            .ok_or_else(|| Error::Internal("a session token where a key was expected".into()))?;
        let (row, _) = self.channel_of_key_async(key, Naming::Nothing).await?;
        admit(credential.matching(row)?, cert_sha256, peer)
    }

    /// Issues a session token for `channel` (and `subject`, such as a user id) valid for
    /// `ttl_seconds`: `hos1.<payload>.<HMAC>`, the MAC by the HSM, so any node can check it.
    pub fn issue_session(
        &self,
        channel: &Channel,
        subject: Option<&str>,
        ttl_seconds: u32,
    ) -> Result<String, Error> {
        // Whole seconds in the token, rounded up so that it lives at least `ttl_seconds`.
        let expiry =
            (self.clock.now_millis().div_ceil(1000)).saturating_add(u64::from(ttl_seconds));
        let payload = format!("{}|{expiry}|{}", channel.id, subject.unwrap_or(""));
        let encoded = data_encoding::BASE64URL_NOPAD.encode(payload.as_bytes());
        let mac = self.session_mac(&encoded)?;
        Ok(format!(
            "{SESSION_PREFIX}.{encoded}.{}",
            data_encoding::BASE64URL_NOPAD.encode(&mac)
        ))
    }

    /// Authenticates the caller by its channel key as [`Self::authenticate`] does, and finds
    /// the token `id` of its channel, read in the same grouped statement as the channel (a
    /// verification's one read). Only an authenticated caller learns whether the token
    /// exists: the inner result is `NotFound` if its channel has no such token.
    ///
    /// From an async task (the HTTP workers): the key's MAC is computed here, in the HSM, and
    /// the read is awaited without a blocking thread.
    pub async fn authenticate_key_naming(
        &self,
        key: &str,
        cert_sha256: Option<&str>,
        peer: Option<IpAddr>,
        id: Uuid,
    ) -> Result<(Channel, Result<Token, Error>), Error> {
        let (row, read) = self.channel_of_key_async(key, Naming::Token(id)).await?;
        Ok((admit(row, cert_sha256, peer)?, found(read.token)))
    }

    /// Authenticates the caller by its channel key as [`Self::authenticate`] does, and reads
    /// the tokens and open challenges of `user` in its channel in the same grouped read (a
    /// verification by user id's one read). With no user (the request's path was refused),
    /// the caller is authenticated and nothing is read.
    ///
    /// From an async task, like [`Self::authenticate_key_naming`].
    pub async fn authenticate_key_naming_user(
        &self,
        key: &str,
        cert_sha256: Option<&str>,
        peer: Option<IpAddr>,
        user: Option<&str>,
    ) -> Result<(Channel, Candidates), Error> {
        let naming = user.map_or(Naming::Nothing, |user| Naming::User(user, self.now()));
        let (row, read) = self.channel_of_key_async(key, naming).await?;
        let channel = admit(row, cert_sha256, peer)?;
        Ok((channel, read.candidates.unwrap_or_default()))
    }

    /// The channel of `key`, and what was read with it.
    async fn channel_of_key_async(
        &self,
        key: &str,
        naming: Naming<'_>,
    ) -> Result<(ChannelRow, ChannelFound), Error> {
        let mac = self.key_mac(key)?;
        let mut read = self.store.channel_by_key_mac_async(&mac, naming).await?;
        Ok((known_key(read.channel.take(), &mac)?, read))
    }

    /// The channel of `key`.
    fn channel_of_key(&self, key: &str) -> Result<ChannelRow, Error> {
        let mac = self.key_mac(key)?;
        known_key(self.store.channel_by_key_mac(&mac)?, &mac)
    }

    /// The HSM's MAC of a well-formed channel key (what the database holds).
    fn key_mac(&self, key: &str) -> Result<Vec<u8>, Error> {
        if !looks_like_key(key) {
            tracing::info!(reason = "malformed channel key", "caller refused");
            return Err(Error::Unauthenticated);
        }
        Ok(self.hsm.channel_key_mac(key.as_bytes())?)
    }

    fn channel_of_session(&self, token: &str) -> Result<ChannelRow, Error> {
        let refuse = |reason: &str| {
            tracing::info!(reason, "caller refused");
            Error::Unauthenticated
        };
        let mut parts = token.trim().splitn(3, '.');
        let (Some(SESSION_PREFIX), Some(encoded), Some(mac)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(refuse("malformed session token"));
        };
        let mac = data_encoding::BASE64URL_NOPAD
            .decode(mac.as_bytes())
            .map_err(|_| refuse("malformed session token"))?;
        if !bool::from(self.session_mac(encoded)?.ct_eq(&mac)) {
            return Err(refuse("session token MAC mismatch"));
        }
        let payload = data_encoding::BASE64URL_NOPAD
            .decode(encoded.as_bytes())
            .ok()
            .and_then(|p| String::from_utf8(p).ok())
            .ok_or_else(|| refuse("malformed session token"))?;
        let mut fields = payload.splitn(3, '|');
        let id = fields.next().and_then(|f| Uuid::parse_str(f).ok());
        let expiry = fields.next().and_then(|f| f.parse::<u64>().ok());
        let (Some(id), Some(expiry)) = (id, expiry) else {
            return Err(refuse("malformed session token"));
        };
        if expiry <= self.clock.now_unix() {
            return Err(refuse("session token expired"));
        }
        self.store
            .channel_by_id(id)?
            .ok_or_else(|| refuse("session of a deleted channel"))
    }

    fn session_mac(&self, encoded_payload: &str) -> Result<Vec<u8>, Error> {
        let message = format!("{SESSION_PREFIX}|{encoded_payload}");
        Ok(self.hsm.channel_key_mac(message.as_bytes())?)
    }

    /// Creates a channel with a fresh key and the given options.
    pub fn create_channel(
        &self,
        name: &str,
        options: &ChannelOptions,
    ) -> Result<(ChannelRow, NewChannelKey), Error> {
        let (certs, networks) = (&options.client_cert_sha256, &options.allow_ip);
        if options.message_budget.is_some_and(|b| b < 0) {
            return Err(Error::InvalidRequest("message_budget"));
        }
        if !valid_name(name) {
            return Err(Error::InvalidRequest("name"));
        }
        let certs = certs
            .iter()
            .map(|c| normalise_fingerprint(c))
            .collect::<Option<Vec<_>>>()
            .ok_or(Error::InvalidRequest("client_cert_sha256"))?;
        let networks = networks
            .iter()
            .map(|n| normalise_network(n))
            .collect::<Option<Vec<_>>>()
            .ok_or(Error::InvalidRequest("allow_ip"))?;
        self.ensure_keys()?;
        let (key, key_mac) = self.new_channel_key()?;
        let account_number = self.hsm.challenge_code(10)?.expose().to_owned();
        let row = self.store.insert_channel(&NewChannel {
            id: Uuid::new_v4(),
            name: name.to_owned(),
            key_mac,
            key_mac_version: CHANNEL_MAC_VERSION,
            client_cert_sha256: certs,
            allowed_networks: networks,
            may_receive_otp: options.may_receive_otp,
            message_budget: options.message_budget,
            account_number: Some(account_number),
        })?;
        let shown = NewChannelKey {
            name: row.name.clone(),
            channel_key: key,
        };
        Ok((row, shown))
    }

    /// Replaces a channel's key; the old one stops working at once.
    pub fn rotate_channel_key(&self, name: &str) -> Result<NewChannelKey, Error> {
        let (key, key_mac) = self.new_channel_key()?;
        let row = self
            .store
            .set_channel_key(name, &key_mac, CHANNEL_MAC_VERSION)?
            .ok_or(Error::NotFound(Missing::Channel))?;
        Ok(NewChannelKey {
            name: row.name,
            channel_key: key,
        })
    }

    /// Disables a channel: its key is refused from now on.
    pub fn disable_channel(&self, name: &str) -> Result<ChannelRow, Error> {
        self.store
            .disable_channel(name)?
            .ok_or(Error::NotFound(Missing::Channel))
    }

    /// Every channel.
    pub fn list_channels(&self) -> Result<Vec<ChannelRow>, Error> {
        Ok(self.store.list_channels()?)
    }

    /// A new random key (from the HSM) and its MAC (by the HSM).
    fn new_channel_key(&self) -> Result<(SecretString, Vec<u8>), Error> {
        let random = self.hsm.random(KEY_BYTES)?;
        let encoded = data_encoding::BASE32_NOPAD
            .encode(random.expose())
            .to_lowercase();
        let key = SecretString::new(format!("{KEY_PREFIX}{encoded}"));
        let mac = self.hsm.channel_key_mac(key.expose().as_bytes())?;
        Ok((key, mac))
    }
}

/// The channel found by a key's MAC, if its MAC is the one asked for (compared in constant
/// time).
fn known_key(row: Option<ChannelRow>, mac: &[u8]) -> Result<ChannelRow, Error> {
    match row {
        Some(row) if bool::from(row.key_mac.ct_eq(mac)) => Ok(row),
        _ => {
            tracing::info!(reason = "unknown channel key", "caller refused");
            Err(Error::Unauthenticated)
        }
    }
}

/// The checks every credential passes last: not disabled, certificate and address bindings.
fn admit(
    row: ChannelRow,
    cert_sha256: Option<&str>,
    peer: Option<IpAddr>,
) -> Result<Channel, Error> {
    if row.disabled {
        tracing::info!(channel = %row.name, reason = "channel disabled", "caller refused");
        return Err(Error::ChannelDisabled);
    }
    if !row.client_cert_sha256.is_empty()
        && !cert_sha256.is_some_and(|fp| row.client_cert_sha256.iter().any(|c| c == fp))
    {
        tracing::info!(channel = %row.name, reason = "certificate not bound", "caller refused");
        return Err(Error::Unauthenticated);
    }
    if !row.allowed_networks.is_empty() && !peer.is_some_and(|ip| allowed(&row, ip)) {
        tracing::info!(channel = %row.name, reason = "source address not allowed", "caller refused");
        return Err(Error::Unauthenticated);
    }
    Ok(Channel {
        id: row.id,
        name: row.name,
        may_receive_otp: row.may_receive_otp,
        account_number: row.account_number,
    })
}

fn looks_like_key(k: &str) -> bool {
    k.strip_prefix(KEY_PREFIX).is_some_and(|rest| {
        (16..=128).contains(&rest.len()) && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

fn allowed(row: &ChannelRow, ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    row.allowed_networks
        .iter()
        .filter_map(|n| n.parse::<IpNet>().ok())
        .any(|net| net.contains(&ip))
}

/// Channel names: a letter or digit, then up to 63 letters, digits, `.`, `_` or `-`.
pub(crate) fn valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphanumeric())
        && name.len() <= 64
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// A SHA-256 fingerprint as 64 lower-case hex digits (colons allowed on input).
fn normalise_fingerprint(fp: &str) -> Option<String> {
    let hex: String = fp
        .chars()
        .filter(|c| *c != ':')
        .collect::<String>()
        .to_lowercase();
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
}

/// A CIDR network, or a single address as its host network.
fn normalise_network(n: &str) -> Option<String> {
    n.parse::<IpNet>()
        .ok()
        .or_else(|| n.parse::<IpAddr>().ok().map(IpNet::from))
        .map(|net| net.trunc().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_are_restricted_to_a_safe_alphabet() {
        assert!(valid_name("mobile-banking_1.prod"));
        assert!(!valid_name(""));
        assert!(!valid_name("-leading"));
        assert!(!valid_name("has space"));
        assert!(!valid_name(&"a".repeat(65)));
    }

    #[test]
    fn fingerprints_and_networks_are_normalised() {
        let fp = "AB:".repeat(31) + "AB";
        assert_eq!(normalise_fingerprint(&fp), Some("ab".repeat(32)));
        assert_eq!(normalise_fingerprint("abc"), None);
        assert_eq!(
            normalise_network("10.1.2.3/8").as_deref(),
            Some("10.0.0.0/8")
        );
        assert_eq!(
            normalise_network("127.0.0.1").as_deref(),
            Some("127.0.0.1/32")
        );
        assert_eq!(normalise_network("nonsense"), None);
    }

    #[test]
    fn only_well_formed_keys_reach_the_hsm() {
        assert!(looks_like_key("hok_abcdefghijklmnopqrstuvwxyz234567"));
        assert!(!looks_like_key("abcdefghijklmnopqrstuvwxyz234567"));
        assert!(!looks_like_key("hok_short"));
        assert!(!looks_like_key("hok_abcdefghijklmnopqrstuvwxyz23456'"));
    }
}
