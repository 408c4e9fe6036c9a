//! A client call's identity on the wire: the client's random id and the call's number, in
//! the `x-curvine-client` and `x-curvine-call` metadata of every request that changes the
//! namespace. Every retry of one call carries the same pair, so the master answers a
//! repeat with the first result (see `master::retry_cache`).

use crate::fs_error::FsError;
use serde::{Deserialize, Serialize};
use tonic::metadata::MetadataMap;
use tonic::Request;

/// The metadata key of the client id (16 hex digits).
pub const CLIENT_HEADER: &str = "x-curvine-client";
/// The metadata key of the call number (decimal).
pub const CALL_HEADER: &str = "x-curvine-call";

/// One logical client call: the client's id and the call's number. Also the key of the
/// master's retry cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CallId {
    /// The client's id (random per client instance).
    pub client: u64,
    /// The call's number (monotonic per client; every retry of one call reuses it).
    pub call: u64,
}

impl CallId {
    /// `message` as a request carrying this call's identity.
    pub fn request<T>(self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        let md = request.metadata_mut();
        if let Ok(v) = format!("{:016x}", self.client).parse() {
            md.insert(CLIENT_HEADER, v);
        }
        if let Ok(v) = self.call.to_string().parse() {
            md.insert(CALL_HEADER, v);
        }
        request
    }

    /// The call a request carries: `None` when it carries none (an older client); a
    /// malformed or half-present pair is refused, naming the header.
    pub fn from_metadata(md: &MetadataMap) -> Result<Option<CallId>, FsError> {
        let text = |key: &str| -> Result<Option<String>, FsError> {
            md.get(key)
                .map(|v| {
                    v.to_str().map(str::to_string).map_err(|_| {
                        FsError::InvalidArgument(format!("{key}: not printable ASCII"))
                    })
                })
                .transpose()
        };
        let (client, call) = match (text(CLIENT_HEADER)?, text(CALL_HEADER)?) {
            (None, None) => return Ok(None),
            (Some(client), Some(call)) => (client, call),
            _ => {
                return Err(FsError::InvalidArgument(format!(
                    "{CLIENT_HEADER} and {CALL_HEADER} come together: send both or neither"
                )))
            }
        };
        let client = u64::from_str_radix(&client, 16).map_err(|_| {
            FsError::InvalidArgument(format!(
                "{CLIENT_HEADER} {client:?}: expected up to 16 hex digits"
            ))
        })?;
        let call = call.parse().map_err(|_| {
            FsError::InvalidArgument(format!("{CALL_HEADER} {call:?}: expected a decimal number"))
        })?;
        Ok(Some(CallId { client, call }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_call_survives_the_metadata() {
        let id = CallId {
            client: u64::MAX - 3,
            call: 42,
        };
        let req = id.request(());
        assert_eq!(CallId::from_metadata(req.metadata()), Ok(Some(id)));
        assert_eq!(CallId::from_metadata(&MetadataMap::new()), Ok(None));
    }

    #[test]
    fn a_half_or_bad_pair_names_the_header() {
        let mut md = MetadataMap::new();
        md.insert(CALL_HEADER, "7".parse().unwrap());
        let e = CallId::from_metadata(&md).unwrap_err();
        assert!(e.to_string().contains(CLIENT_HEADER), "{e}");
        md.insert(CLIENT_HEADER, "zz".parse().unwrap());
        let e = CallId::from_metadata(&md).unwrap_err();
        assert!(e.to_string().contains("hex"), "{e}");
    }
}
