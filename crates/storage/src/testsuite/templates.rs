//! Conformance checks for UI templates.
use crate::{RetentionPolicy, Storage, TemplateRecord};

const CONFIG: &str = r#"{"layer":"WECHAT_MINI_PROGRAM","entity":"Service","name":"Svc"}"#;

fn record(id: &str, configuration: &str, disabled: bool) -> TemplateRecord {
    TemplateRecord {
        id: id.to_string(),
        configuration: configuration.to_string(),
        disabled,
    }
}

pub(super) fn templates_round_trip_and_replace(store: &dyn Storage) {
    assert_eq!(store.list_templates().unwrap(), vec![]);
    assert_eq!(
        store.get_template("WeChat-Mini-Program-Service").unwrap(),
        None
    );

    store
        .put_template("WeChat-Mini-Program-Service", CONFIG, false)
        .unwrap();
    assert_eq!(
        store.get_template("WeChat-Mini-Program-Service").unwrap(),
        Some(record("WeChat-Mini-Program-Service", CONFIG, false))
    );

    // Replacing keeps one row per id; the configuration is kept byte for byte.
    let changed = "{ \"name\" : \"Changed \u{4e2d}\" }";
    store
        .put_template("WeChat-Mini-Program-Service", changed, true)
        .unwrap();
    assert_eq!(
        store.get_template("WeChat-Mini-Program-Service").unwrap(),
        Some(record("WeChat-Mini-Program-Service", changed, true)),
        "a disabled template is still returned by id"
    );
    assert_eq!(store.list_templates().unwrap().len(), 1);
}

pub(super) fn templates_list_sorted_by_id(store: &dyn Storage) {
    // "a" is a prefix of "ab": the listing must still tell them apart.
    for id in ["b", "ab", "a", "7f9c-uuid"] {
        store.put_template(id, CONFIG, id == "a").unwrap();
    }
    let listed = store.list_templates().unwrap();
    let ids: Vec<&str> = listed.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, vec!["7f9c-uuid", "a", "ab", "b"]);
    assert!(listed[1].disabled && !listed[2].disabled);
    assert_eq!(store.get_template("").unwrap(), None);
}

pub(super) fn templates_survive_retention(store: &dyn Storage) {
    store.put_template("kept", CONFIG, false).unwrap();
    store.flush().unwrap();
    store
        .remove_expired(
            &RetentionPolicy {
                metrics_days: 0,
                records_days: 0,
            },
            i64::MAX / 2,
        )
        .unwrap();
    assert_eq!(
        store.list_templates().unwrap(),
        vec![record("kept", CONFIG, false)]
    );
}
