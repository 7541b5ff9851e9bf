use std::fmt;

/// A SkyWalking layer: the kind of system a service belongs to.
///
/// Stored as OAP's integer value so ids and rows match OAP's. Names OAP does not know resolve to
/// [`Layer::UNDEFINED`], as OAP's MAL does at run time.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Layer(pub i32);

/// OAP's `Layer` enum: (name, value, normal).
const LAYERS: &[(&str, i32, bool)] = &[
    ("UNDEFINED", 0, false),
    ("MESH", 1, true),
    ("GENERAL", 2, true),
    ("OS_LINUX", 3, true),
    ("K8S", 4, false),
    ("FAAS", 5, true),
    ("MESH_CP", 6, true),
    ("MESH_DP", 7, true),
    ("DATABASE", 8, false),
    ("CACHE", 9, false),
    ("BROWSER", 10, true),
    ("SO11Y_OAP", 11, true),
    ("SO11Y_SATELLITE", 12, true),
    ("MQ", 13, false),
    ("VIRTUAL_DATABASE", 14, false),
    ("VIRTUAL_MQ", 15, false),
    ("VIRTUAL_GATEWAY", 16, false),
    ("K8S_SERVICE", 17, true),
    ("MYSQL", 18, true),
    ("POSTGRESQL", 19, true),
    ("APISIX", 20, true),
    ("AWS_EKS", 21, true),
    ("NGINX", 22, true),
    ("AWS_S3", 23, true),
    ("AWS_DYNAMODB", 24, true),
    ("AWS_GATEWAY", 25, true),
    ("REDIS", 26, true),
    ("ELASTICSEARCH", 27, true),
    ("RABBITMQ", 28, true),
    ("MONGODB", 29, true),
    ("KAFKA", 30, true),
    ("PULSAR", 31, true),
    ("SO11Y_BANYANDB", 32, true),
    ("BOOKKEEPER", 33, true),
    ("CLICKHOUSE", 34, true),
    ("ACTIVEMQ", 35, true),
    ("CILIUM_SERVICE", 36, true),
    ("SO11Y_JAVA_AGENT", 37, true),
    ("SO11Y_GO_AGENT", 38, true),
    ("ROCKETMQ", 39, true),
    ("KONG", 40, true),
    ("FLINK", 41, true),
    ("BANYANDB", 42, true),
    ("VIRTUAL_GENAI", 43, false),
    ("ENVOY_AI_GATEWAY", 44, true),
    ("OS_WINDOWS", 45, true),
    ("SO11Y_PYTHON_AGENT", 46, true),
    ("IOS", 47, true),
    ("WECHAT_MINI_PROGRAM", 48, true),
    ("ALIPAY_MINI_PROGRAM", 49, true),
    ("AIRFLOW", 50, true),
];

impl Layer {
    /// `UNDEFINED` (0).
    pub const UNDEFINED: Layer = Layer(0);
    /// `GENERAL` (2): services seen through agents, and logs no other rule claimed.
    pub const GENERAL: Layer = Layer(2);
    /// `WECHAT_MINI_PROGRAM` (48).
    pub const WECHAT_MINI_PROGRAM: Layer = Layer(48);
    /// `ALIPAY_MINI_PROGRAM` (49).
    pub const ALIPAY_MINI_PROGRAM: Layer = Layer(49);

    /// The layer with this OAP name, or `None` if OAP has no such layer.
    pub fn from_name(name: &str) -> Option<Layer> {
        LAYERS
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|(_, v, _)| Layer(*v))
    }

    /// The layer with this OAP name; unknown names give [`Layer::UNDEFINED`] (OAP's MAL behaviour).
    pub fn from_name_or_undefined(name: &str) -> Layer {
        Layer::from_name(name).unwrap_or(Layer::UNDEFINED)
    }

    /// OAP's name for this layer (`"UNDEFINED"` for values OAP does not define).
    pub fn name(self) -> &'static str {
        LAYERS
            .iter()
            .find(|(_, v, _)| *v == self.0)
            .map(|(n, _, _)| *n)
            .unwrap_or("UNDEFINED")
    }

    /// Whether services of this layer are "normal" (have agents / real entities).
    pub fn is_normal(self) -> bool {
        LAYERS
            .iter()
            .find(|(_, v, _)| *v == self.0)
            .map(|(_, _, n)| *n)
            .unwrap_or(false)
    }

    /// Every layer OAP defines, in value order.
    pub fn all() -> impl Iterator<Item = Layer> {
        LAYERS.iter().map(|(_, v, _)| Layer(*v))
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mini_program_layers_have_oap_values() {
        assert_eq!(Layer::from_name("WECHAT_MINI_PROGRAM"), Some(Layer(48)));
        assert_eq!(Layer::from_name("ALIPAY_MINI_PROGRAM"), Some(Layer(49)));
        assert!(Layer::WECHAT_MINI_PROGRAM.is_normal());
        assert_eq!(Layer::from_name_or_undefined("NOPE"), Layer::UNDEFINED);
        assert_eq!(Layer(49).to_string(), "ALIPAY_MINI_PROGRAM");
    }
}
