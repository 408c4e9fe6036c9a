//! A client call's identity on the wire: the client's random id and the call's number, in
//! the `x-curvine-client` and `x-curvine-call` metadata of every request that changes the
//! namespace. Every retry of one call carries the same pair, so the master answers a
//! repeat with the first result (see `master::retry_cache`). `x-curvine-answered` says
//! below which number every call of the client has had its answer, so the master forgets
//! those.

use crate::fs_error::FsError;
use tonic::metadata::MetadataMap;
use tonic::Request;

/// The metadata key of the client id (16 hex digits).
pub const CLIENT_HEADER: &str = "x-curvine-client";
/// The metadata key of the call number (decimal).
pub const CALL_HEADER: &str = "x-curvine-call";
/// The metadata key of the client's answered mark (decimal).
pub const ANSWERED_HEADER: &str = "x-curvine-answered";

/// One logical client call, as one attempt sends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallId {
    /// The client's id (random per client instance).
    pub client: u64,
    /// The call's number (monotonic per client; every retry of one call reuses it).
    pub call: u64,
    /// Every call of this client numbered below this has had its answer (or was given
    /// up): none of them is sent again. At most `call`.
    pub answered_below: u64,
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
        if let Ok(v) = self.answered_below.to_string().parse() {
            md.insert(ANSWERED_HEADER, v);
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
        let number = |key: &str, text: &str| -> Result<u64, FsError> {
            text.parse().map_err(|_| {
                FsError::InvalidArgument(format!("{key} {text:?}: expected a decimal number"))
            })
        };
        let call = number(CALL_HEADER, &call)?;
        // Absent: nothing is known answered.
        let answered_below = match text(ANSWERED_HEADER)? {
            Some(t) => number(ANSWERED_HEADER, &t)?.min(call),
            None => 0,
        };
        Ok(Some(CallId {
            client,
            call,
            answered_below,
        }))
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
            answered_below: 40,
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
        md.insert(CLIENT_HEADER, "ff".parse().unwrap());
        md.insert(ANSWERED_HEADER, "x".parse().unwrap());
        let e = CallId::from_metadata(&md).unwrap_err();
        assert!(e.to_string().contains(ANSWERED_HEADER), "{e}");
        // A mark past the call itself is taken as the call.
        md.insert(ANSWERED_HEADER, "9".parse().unwrap());
        let id = CallId::from_metadata(&md).unwrap().unwrap();
        assert_eq!((id.client, id.call, id.answered_below), (0xff, 7, 7));
    }
}
