//! The UI side of the query API: booster-ui dashboard templates and the navigation menu, loaded
//! from a directory at start (`*.json` templates, recursively, plus `menu.yaml`).
//!
//! Shipped templates are the base set; templates stored through `addTemplate`/`changeTemplate`/
//! `disableTemplate` override them by id (see [`crate::schema_with_ui`]).

use crate::{mqe, QueryContext, SkylarkSchema};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// File name of the menu inside the templates directory.
pub const MENU_FILE: &str = "menu.yaml";

/// Why the UI templates directory could not be loaded. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum TemplateLoadError {
    /// A file or directory could not be read.
    #[error("cannot read {path}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The IO failure.
        #[source]
        source: std::io::Error,
    },
    /// A template file is not valid JSON.
    #[error("{path}:{line}:{column}: invalid JSON")]
    Json {
        /// The file.
        path: PathBuf,
        /// 1-based line of the syntax error.
        line: usize,
        /// 1-based column of the syntax error.
        column: usize,
        /// What the parser saw.
        #[source]
        source: serde_json::Error,
    },
    /// A template file is JSON but not a valid template.
    #[error("{path}: {reason}")]
    InvalidTemplate {
        /// The file.
        path: PathBuf,
        /// What is wrong, e.g. `template 0: missing configuration.layer`.
        reason: String,
    },
    /// Two templates have the same id.
    #[error("template id {id} is defined in both {first} and {second}")]
    DuplicateId {
        /// The id.
        id: String,
        /// Where it was first seen.
        first: PathBuf,
        /// Where it was seen again.
        second: PathBuf,
    },
    /// `menu.yaml` is not valid YAML or not a menu.
    #[error("{path}{position}: invalid menu")]
    Menu {
        /// The file.
        path: PathBuf,
        /// `:line:column` when known.
        position: String,
        /// What the parser saw.
        #[source]
        source: serde_yaml::Error,
    },
    /// `menu.yaml` parses but an item is unusable.
    #[error("{path}: {reason}")]
    InvalidMenu {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// One shipped dashboard template.
#[derive(Debug, Clone, PartialEq)]
pub struct UiTemplate {
    /// The file's top-level `id`, e.g. `WeChat-Mini-Program-Service`.
    pub id: String,
    /// The inner `configuration` object as compact JSON text (what `getAllTemplates` serves).
    pub configuration: String,
    /// `configuration.layer`.
    pub layer: String,
    /// `configuration.entity` (`All`, `Service`, `ServiceInstance`, `Endpoint`, ...).
    pub entity: String,
    /// `configuration.name`.
    pub name: String,
    /// `configuration.isRoot` (false when absent).
    pub is_root: bool,
    /// The file it came from.
    pub source: PathBuf,
}

/// One entry of the navigation menu (a group when it has sub items, otherwise a layer leaf).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct MenuEntry {
    /// Shown title.
    pub title: String,
    /// Icon name.
    #[serde(default)]
    pub icon: Option<String>,
    /// Layer of a leaf (`WECHAT_MINI_PROGRAM`); groups have none.
    #[serde(default)]
    pub layer: Option<String>,
    /// Description.
    #[serde(default)]
    pub description: Option<String>,
    /// Link to the documentation.
    #[serde(default)]
    pub document_link: Option<String>,
    /// booster-ui's translation key.
    #[serde(default)]
    pub i18n_key: Option<String>,
    /// Sub items.
    #[serde(default)]
    pub menus: Vec<MenuEntry>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct MenuFile {
    menus: Vec<MenuEntry>,
}

/// The shipped templates and menu.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct UiTemplates {
    templates: Vec<UiTemplate>,
    menu: Vec<MenuEntry>,
}

/// What the UI-configuration resolvers read: the shipped set and whether editing is allowed.
#[derive(Debug, Clone, Default)]
pub struct UiContext {
    /// Shipped templates and menu.
    pub templates: Arc<UiTemplates>,
    /// OAP's `SW_ENABLE_UPDATE_UI_TEMPLATE` (default false): whether `addTemplate`,
    /// `changeTemplate` and `disableTemplate` may change anything.
    pub ui_template_editing: bool,
    /// `SW_TRACE_LINK_TEMPLATE`: a URL with `{traceId}` where traces Skylark does not hold are
    /// kept (`https://jaeger.example/trace/{traceId}`); RUM resources link there.
    pub trace_link_template: Option<String>,
}

/// Builds the schema with the UI configuration fields served from `ui` (what the server should
/// use; [`crate::schema`] serves no templates, an empty menu and refuses template edits).
pub fn schema_with_ui(ctx: QueryContext, ui: UiContext) -> SkylarkSchema {
    crate::schema_with_limits(ctx, ui, &crate::QueryLimits::default())
}

/// [`schema_with_ui`], with source maps and issue status changes as `issues` says.
pub fn schema_with_issues(
    ctx: QueryContext,
    ui: UiContext,
    issues: crate::IssuesContext,
) -> SkylarkSchema {
    crate::schema_full(ctx, ui, issues, &crate::QueryLimits::default())
}

impl UiTemplates {
    /// Loads every `*.json` under `dir` (recursively, in path order) and `dir/menu.yaml`.
    /// Fails on the first broken file, naming it.
    pub fn load(dir: &Path) -> Result<UiTemplates, TemplateLoadError> {
        let mut files = Vec::new();
        collect_json_files(dir, &mut files)?;
        files.sort();
        let mut templates: Vec<UiTemplate> = Vec::new();
        let mut seen: BTreeMap<String, PathBuf> = BTreeMap::new();
        for path in files {
            let text = read(&path)?;
            for template in parse_template_file(&path, &text)? {
                if let Some(first) = seen.get(&template.id) {
                    return Err(TemplateLoadError::DuplicateId {
                        id: template.id,
                        first: first.clone(),
                        second: path,
                    });
                }
                seen.insert(template.id.clone(), path.clone());
                templates.push(template);
            }
        }
        let menu_path = dir.join(MENU_FILE);
        let menu = parse_menu(&menu_path, &read(&menu_path)?)?;
        tracing::info!(
            dir = %dir.display(),
            templates = templates.len(),
            "ui templates loaded"
        );
        Ok(UiTemplates { templates, menu })
    }

    /// Shipped templates, in file order.
    pub fn templates(&self) -> &[UiTemplate] {
        &self.templates
    }

    /// Top-level menu entries.
    pub fn menu(&self) -> &[MenuEntry] {
        &self.menu
    }

    /// The shipped template `id`.
    pub fn get(&self, id: &str) -> Option<&UiTemplate> {
        self.templates.iter().find(|t| t.id == id)
    }
}

fn read(path: &Path) -> Result<String, TemplateLoadError> {
    std::fs::read_to_string(path).map_err(|source| TemplateLoadError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn collect_json_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), TemplateLoadError> {
    let io = |source| TemplateLoadError::Io {
        path: dir.to_path_buf(),
        source,
    };
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.is_dir() {
            collect_json_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
    Ok(())
}

/// Parses one template file: a JSON array of `{id, configuration}` (OAP's format) or a single
/// such object.
pub fn parse_template_file(path: &Path, text: &str) -> Result<Vec<UiTemplate>, TemplateLoadError> {
    let value: Value = serde_json::from_str(text).map_err(|source| TemplateLoadError::Json {
        path: path.to_path_buf(),
        line: source.line(),
        column: source.column(),
        source,
    })?;
    let invalid = |reason: String| TemplateLoadError::InvalidTemplate {
        path: path.to_path_buf(),
        reason,
    };
    let items = match value {
        Value::Array(items) => items,
        item @ Value::Object(_) => vec![item],
        _ => return Err(invalid("expected an array of templates".into())),
    };
    if items.is_empty() {
        return Err(invalid("no templates in file".into()));
    }
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            template_from(item, path)
                .map_err(|reason| invalid(format!("template {index}: {reason}")))
        })
        .collect()
}

fn template_from(item: Value, path: &Path) -> Result<UiTemplate, String> {
    let Value::Object(mut item) = item else {
        return Err("not an object".into());
    };
    let id = match item.get("id") {
        Some(Value::String(id)) if !id.trim().is_empty() => id.clone(),
        Some(_) => return Err("id must be a non-empty string".into()),
        None => return Err("missing id".into()),
    };
    let configuration = match item.remove("configuration") {
        Some(c @ Value::Object(_)) => c,
        // Some exports keep the configuration as JSON text.
        Some(Value::String(text)) => serde_json::from_str::<Value>(&text)
            .ok()
            .filter(Value::is_object)
            .ok_or_else(|| format!("{id}: configuration text is not a JSON object"))?,
        Some(_) => return Err(format!("{id}: configuration must be an object")),
        None => return Err(format!("{id}: missing configuration")),
    };
    let fields = ConfigurationFields::of(&configuration).map_err(|e| format!("{id}: {e}"))?;
    for expression in template_expressions(&configuration) {
        mqe::parse(&expression)
            .map_err(|e| format!("{id}: MQE expression `{expression}` does not parse: {e}"))?;
    }
    Ok(UiTemplate {
        configuration: configuration.to_string(),
        id,
        layer: fields.layer,
        entity: fields.entity,
        name: fields.name,
        is_root: fields.is_root,
        source: path.to_path_buf(),
    })
}

/// The fields booster-ui keys dashboards by (`layer_entity_name`, plus `isRoot`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigurationFields {
    /// `layer`.
    pub layer: String,
    /// `entity`.
    pub entity: String,
    /// `name`.
    pub name: String,
    /// `isRoot` (false when absent).
    pub is_root: bool,
}

impl ConfigurationFields {
    /// Reads and checks them: `layer`, `entity` and `name` must be non-empty strings.
    pub fn of(configuration: &Value) -> Result<ConfigurationFields, String> {
        let text = |key: &str| match configuration.get(key) {
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
            Some(_) => Err(format!("configuration.{key} must be a non-empty string")),
            None => Err(format!("missing configuration.{key}")),
        };
        Ok(ConfigurationFields {
            layer: text("layer")?,
            entity: text("entity")?,
            name: text("name")?,
            is_root: configuration
                .get("isRoot")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }
}

/// Keys whose value is a list of MQE expressions: a widget's plotted and sparkline expressions,
/// and a topology widget's edge and node expressions.
const EXPRESSION_LISTS: [&str; 5] = [
    "expressions",
    "subExpressions",
    "linkClientExpressions",
    "linkServerExpressions",
    "nodeExpressions",
];

/// Every MQE expression a booster-ui configuration holds: those of [`EXPRESSION_LISTS`] and a
/// topology's `legendMQE.expression`, at any depth (tabs nest their widgets under `children`).
pub fn template_expressions(configuration: &Value) -> Vec<String> {
    let mut out = Vec::new();
    collect_expressions(configuration, &mut out);
    out
}

fn collect_expressions(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                if key == "legendMQE" {
                    if let Some(e) = v.get("expression").and_then(Value::as_str) {
                        if !e.trim().is_empty() {
                            out.push(e.to_string());
                        }
                    }
                } else if EXPRESSION_LISTS.contains(&key.as_str()) {
                    if let Value::Array(items) = v {
                        out.extend(
                            items
                                .iter()
                                .filter_map(Value::as_str)
                                .filter(|s| !s.trim().is_empty())
                                .map(str::to_string),
                        );
                    }
                } else {
                    collect_expressions(v, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_expressions(v, out)),
        _ => {}
    }
}

/// Parses `menu.yaml`: `menus:` with nested `menus:` groups.
pub fn parse_menu(path: &Path, text: &str) -> Result<Vec<MenuEntry>, TemplateLoadError> {
    let file: MenuFile = serde_yaml::from_str(text).map_err(|source| TemplateLoadError::Menu {
        path: path.to_path_buf(),
        position: source
            .location()
            .map(|l| format!(":{}:{}", l.line(), l.column()))
            .unwrap_or_default(),
        source,
    })?;
    check_menu(&file.menus).map_err(|reason| TemplateLoadError::InvalidMenu {
        path: path.to_path_buf(),
        reason,
    })?;
    Ok(file.menus)
}

fn check_menu(entries: &[MenuEntry]) -> Result<(), String> {
    for entry in entries {
        if entry.title.trim().is_empty() {
            return Err("a menu item has an empty title".into());
        }
        let has_layer = entry.layer.as_deref().is_some_and(|l| !l.trim().is_empty());
        if !has_layer && entry.menus.is_empty() {
            return Err(format!(
                "menu item {} has neither a layer nor sub menus",
                entry.title
            ));
        }
        check_menu(&entry.menus)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_syntax_errors_carry_file_line_and_column() {
        let err = parse_template_file(Path::new("x/bad.json"), "[\n  {\"id\": }\n]").unwrap_err();
        assert!(
            err.to_string().starts_with("x/bad.json:2:10: invalid JSON"),
            "{err}"
        );
    }

    #[test]
    fn missing_fields_are_named() {
        let cases = [
            (r#"[{"configuration": {}}]"#, "template 0: missing id"),
            (r#"[{"id": "a"}]"#, "template 0: a: missing configuration"),
            (
                r#"[{"id": "a", "configuration": {"entity": "All", "name": "n"}}]"#,
                "template 0: a: missing configuration.layer",
            ),
            (
                r#"[{"id": "a", "configuration": {"layer": "L", "name": "n"}}]"#,
                "template 0: a: missing configuration.entity",
            ),
            (
                r#"[{"id": "a", "configuration": {"layer": "L", "entity": "All"}}]"#,
                "template 0: a: missing configuration.name",
            ),
        ];
        for (text, reason) in cases {
            let err = parse_template_file(Path::new("t.json"), text).unwrap_err();
            assert_eq!(err.to_string(), format!("t.json: {reason}"));
        }
    }

    #[test]
    fn broken_mqe_in_a_template_is_refused() {
        let text = r#"[{"id": "a", "configuration": {"layer": "L", "entity": "All", "name": "n",
            "children": [{"type": "Widget", "expressions": ["avg(meter_x"]}]}}]"#;
        let err = parse_template_file(Path::new("t.json"), text).unwrap_err();
        assert!(
            err.to_string().contains("`avg(meter_x` does not parse"),
            "{err}"
        );
    }

    #[test]
    fn menu_leaf_without_layer_is_refused() {
        let err = parse_menu(Path::new("menu.yaml"), "menus:\n  - title: Lonely\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "menu.yaml: menu item Lonely has neither a layer nor sub menus"
        );
        let err = parse_menu(Path::new("menu.yaml"), "menus:\n  - title: [\n").unwrap_err();
        assert!(err.to_string().starts_with("menu.yaml:"), "{err}");
    }
}
