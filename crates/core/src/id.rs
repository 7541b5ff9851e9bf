use base64::Engine;
use std::fmt;

/// OAP truncates service and instance names to this many characters before encoding ids.
pub const SERVICE_NAME_MAX: usize = 70;
/// OAP truncates endpoint names to this many characters before encoding ids.
pub const ENDPOINT_NAME_MAX: usize = 150;

/// Standard Base64 (with padding) of the UTF-8 bytes, as OAP's `IDManager` encodes names.
pub fn base64_encode(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s.as_bytes())
}

/// Appends the base64 of `s` to `out`.
fn push_base64(out: &mut String, s: &str) {
    base64::engine::general_purpose::STANDARD.encode_string(s.as_bytes(), out);
}

/// Length of the base64 of `n` bytes.
fn base64_len(n: usize) -> usize {
    n.div_ceil(3) * 4
}

fn truncate(name: &str, max: usize) -> &str {
    // No more bytes than `max` means no more characters either.
    if name.len() <= max {
        return name;
    }
    match name.char_indices().nth(max) {
        Some((idx, _)) => &name[..idx],
        None => name,
    }
}

fn blank_to_placeholder(name: &str) -> &str {
    if name.is_empty() {
        "_blank"
    } else {
        name
    }
}

/// Truncates a service or instance name as OAP does.
pub(crate) fn service_name(name: &str) -> &str {
    truncate(name, SERVICE_NAME_MAX)
}

/// Truncates an endpoint name as OAP does.
pub(crate) fn endpoint_name(name: &str) -> &str {
    truncate(name, ENDPOINT_NAME_MAX)
}

macro_rules! id_type {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        pub struct $name(String);

        impl $name {
            /// Wraps an id string received from a client or read from storage.
            pub fn from_raw(id: impl Into<String>) -> Self {
                $name(id.into())
            }
            /// The id as a string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
            /// The id as an owned string.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// `base64(name) + "." + (normal ? "1" : "0")`.
    ServiceId
);
id_type!(
    /// `serviceId + "_" + base64(instanceName)`.
    InstanceId
);
id_type!(
    /// `serviceId + "_" + base64(endpointName)`.
    EndpointId
);

impl ServiceId {
    /// The id OAP gives the service `name` (truncated to 70 characters; blank → `_blank`).
    pub fn new(name: &str, normal: bool) -> ServiceId {
        let mut id = String::new();
        push_service_id(&mut id, name, normal);
        ServiceId(id)
    }

    /// Decodes `(name, normal)` from an id, as swctl does; `None` if it is not `b64.{0|1}`.
    pub fn decode(&self) -> Option<(String, bool)> {
        let (b64, normal) = self.0.split_once('.')?;
        if normal.contains('.') {
            return None;
        }
        let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
        Some((String::from_utf8(bytes).ok()?, normal == "1"))
    }
}

impl InstanceId {
    /// The id OAP gives instance `name` of `service`.
    pub fn new(service: &ServiceId, name: &str) -> InstanceId {
        let mut id = service.as_str().to_string();
        push_instance_part(&mut id, name);
        InstanceId(id)
    }
}

impl EndpointId {
    /// The id OAP gives endpoint `name` of `service`.
    pub fn new(service: &ServiceId, name: &str) -> EndpointId {
        let mut id = service.as_str().to_string();
        push_endpoint_part(&mut id, name);
        EndpointId(id)
    }
}

// Ids are made for every stored metric value, so they are written into one string rather than
// formatted from parts.

/// Room for the id of a service, instance or endpoint with names of these lengths.
pub(crate) fn id_capacity(service_name: usize, child_name: usize) -> usize {
    base64_len(service_name.max(6)) + 3 + base64_len(child_name.max(6))
}

/// Appends the id [`ServiceId::new`] gives.
pub(crate) fn push_service_id(out: &mut String, name: &str, normal: bool) {
    push_base64(out, blank_to_placeholder(service_name(name)));
    out.push_str(if normal { ".1" } else { ".0" });
}

/// Appends what follows the service id in the id [`InstanceId::new`] gives.
pub(crate) fn push_instance_part(out: &mut String, name: &str) {
    out.push('_');
    push_base64(out, blank_to_placeholder(service_name(name)));
}

/// Appends what follows the service id in the id [`EndpointId::new`] gives.
pub(crate) fn push_endpoint_part(out: &mut String, name: &str) {
    out.push('_');
    push_base64(out, blank_to_placeholder(endpoint_name(name)));
}

/// Splits `serviceId_b64name` (instance or endpoint id) into the service id and the decoded name.
pub fn split_child_id(id: &str) -> Option<(ServiceId, String)> {
    let (svc, b64) = id.split_once('_')?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    Some((ServiceId::from_raw(svc), String::from_utf8(bytes).ok()?))
}

impl InstanceId {
    /// The service id and instance name this id encodes.
    pub fn decode(&self) -> Option<(ServiceId, String)> {
        split_child_id(&self.0)
    }
}

impl EndpointId {
    /// The service id and endpoint name this id encodes.
    pub fn decode(&self) -> Option<(ServiceId, String)> {
        split_child_id(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_match_oap() {
        let s = ServiceId::new("mini-program-sim-wechat", true);
        assert_eq!(s.as_str(), "bWluaS1wcm9ncmFtLXNpbS13ZWNoYXQ=.1");
        assert_eq!(
            s.decode(),
            Some(("mini-program-sim-wechat".to_string(), true))
        );
        let i = InstanceId::new(&s, "sim");
        assert_eq!(i.as_str(), "bWluaS1wcm9ncmFtLXNpbS13ZWNoYXQ=.1_c2lt");
        assert_eq!(i.decode(), Some((s.clone(), "sim".to_string())));
        assert_eq!(
            InstanceId::new(&s, "").as_str(),
            "bWluaS1wcm9ncmFtLXNpbS13ZWNoYXQ=.1_X2JsYW5r"
        );
        assert_eq!(
            InstanceId::new(&s, "-").as_str(),
            "bWluaS1wcm9ncmFtLXNpbS13ZWNoYXQ=.1_LQ=="
        );
    }

    #[test]
    fn names_are_truncated() {
        let long = "x".repeat(100);
        let s = ServiceId::new(&long, true);
        assert_eq!(s.decode().map(|(n, _)| n.len()), Some(70));
    }
}
