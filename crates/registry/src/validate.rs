//! Validation of published `server.json` documents against the contract's `ServerDetail` constraints.
//!
//! Works on the raw JSON value rather than typed structs so every problem is reported at once, each
//! with the JSON path of the offending member and a message saying how to fix it.

use serde_json::{Map, Value};

use crate::error::FieldError;

/// The official metadata key that publishers may fill in `_meta`.
pub const PUBLISHER_META_KEY: &str = "io.modelcontextprotocol.registry/publisher-provided";

/// Stop collecting after this many problems: a hostile document must not produce a huge response.
const MAX_ERRORS: usize = 50;

/// Checks a whole `ServerDetail`; returns every problem found (at most [`MAX_ERRORS`]).
pub fn server_detail(value: &Value) -> Vec<FieldError> {
    let mut c = Checker::default();
    let Some(map) = c.object("$", value) else {
        return c.errors;
    };
    c.known(
        "$",
        map,
        &[
            "name",
            "description",
            "title",
            "repository",
            "version",
            "websiteUrl",
            "icons",
            "$schema",
            "packages",
            "remotes",
            "_meta",
        ],
    );
    if let Some(name) = c.string("$", map, "name", true)
        && let Err(message) = server_name(name)
    {
        c.push("$.name", message);
    }
    if let Some(d) = c.string("$", map, "description", true) {
        c.length("$.description", d, 1, 100);
    }
    if let Some(t) = c.string("$", map, "title", false) {
        c.length("$.title", t, 1, 100);
    }
    if let Some(v) = c.string("$", map, "version", true)
        && let Err(message) = version(v)
    {
        c.push("$.version", message);
    }
    c.uri_member("$", map, "websiteUrl", false);
    c.uri_member("$", map, "$schema", false);
    if let Some(repo) = map.get("repository") {
        c.repository("$.repository", repo);
    }
    c.array("$", map, "icons", Checker::icon);
    c.array("$", map, "packages", Checker::package);
    c.array("$", map, "remotes", Checker::remote);
    if let Some(meta) = map.get("_meta")
        && let Some(meta) = c.object("$._meta", meta)
    {
        c.known("$._meta", meta, &[PUBLISHER_META_KEY]);
        if let Some(provided) = meta.get(PUBLISHER_META_KEY) {
            c.object(&format!("$._meta[\"{PUBLISHER_META_KEY}\"]"), provided);
        }
    }
    c.errors
}

/// Checks a server name: `reverse.dns.namespace/name`, 3 to 200 characters.
pub fn server_name(name: &str) -> Result<(), String> {
    let len = name.chars().count();
    if !(3..=200).contains(&len) {
        return Err(format!(
            "must be 3 to 200 characters long, got {len}; use the form io.example/weather"
        ));
    }
    let valid = name.split_once('/').is_some_and(|(namespace, rest)| {
        !namespace.is_empty()
            && !rest.is_empty()
            && namespace
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    });
    if valid {
        Ok(())
    } else {
        Err("must be a reverse-DNS namespace, one slash and a name (letters, digits, '.', '_', '-'), like io.example/weather".to_owned())
    }
}

/// Checks a published version: an exact version of at most 255 characters, never a range.
pub fn version(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Err("must not be empty; use a semantic version like 1.2.3".to_owned());
    }
    if v.chars().count() > 255 {
        return Err("must be at most 255 characters".to_owned());
    }
    if v == "latest" {
        return Err(
            "'latest' is reserved to name the latest version; use an exact version like 1.2.3"
                .to_owned(),
        );
    }
    if v.chars().any(char::is_whitespace) {
        return Err("must not contain whitespace; use an exact version like 1.2.3".to_owned());
    }
    let core = v.split(['-', '+']).next().unwrap_or(v);
    let is_range = v.starts_with(['^', '~', '>', '<', '='])
        || v.contains("||")
        || core.split('.').any(|part| matches!(part, "x" | "X" | "*"));
    if is_range {
        return Err(format!(
            "'{v}' is a version range; publish one exact version like 1.2.3"
        ));
    }
    Ok(())
}

/// Checks a transport URL: `http(s)://...` or a `{variable}` template, without whitespace.
fn transport_url(url: &str) -> bool {
    if url.chars().any(char::is_whitespace) {
        return false;
    }
    if let Some(rest) = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
    {
        return !rest.is_empty();
    }
    let Some(rest) = url.strip_prefix('{') else {
        return false;
    };
    let Some((var, _)) = rest.split_once('}') else {
        return false;
    };
    let mut chars = var.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[derive(Default)]
struct Checker {
    errors: Vec<FieldError>,
}

impl Checker {
    fn push(&mut self, path: &str, message: impl Into<String>) {
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(FieldError::new(path, message));
        }
    }

    fn object<'v>(&mut self, path: &str, value: &'v Value) -> Option<&'v Map<String, Value>> {
        let map = value.as_object();
        if map.is_none() {
            self.push(path, "must be a JSON object");
        }
        map
    }

    fn known(&mut self, path: &str, map: &Map<String, Value>, allowed: &[&str]) {
        for key in map.keys() {
            if !allowed.contains(&key.as_str()) {
                self.push(
                    &member(path, key),
                    format!("unknown field; allowed here: {}", allowed.join(", ")),
                );
            }
        }
    }

    fn string<'v>(
        &mut self,
        path: &str,
        map: &'v Map<String, Value>,
        key: &str,
        required: bool,
    ) -> Option<&'v str> {
        match map.get(key) {
            None if required => {
                self.push(&member(path, key), "is required");
                None
            }
            None => None,
            Some(Value::String(s)) => Some(s),
            Some(_) => {
                self.push(&member(path, key), "must be a string");
                None
            }
        }
    }

    fn boolean(&mut self, path: &str, map: &Map<String, Value>, key: &str) {
        if map.get(key).is_some_and(|v| !v.is_boolean()) {
            self.push(&member(path, key), "must be true or false");
        }
    }

    fn one_of(&mut self, path: &str, map: &Map<String, Value>, key: &str, allowed: &[&str]) {
        if let Some(s) = self.string(path, map, key, false)
            && !allowed.contains(&s)
        {
            self.push(
                &member(path, key),
                format!("must be one of: {}", allowed.join(", ")),
            );
        }
    }

    fn length(&mut self, path: &str, s: &str, min: usize, max: usize) {
        let len = s.chars().count();
        if !(min..=max).contains(&len) {
            self.push(
                path,
                format!("must be {min} to {max} characters long, got {len}"),
            );
        }
    }

    fn uri_member(&mut self, path: &str, map: &Map<String, Value>, key: &str, required: bool) {
        if let Some(s) = self.string(path, map, key, required)
            && url::Url::parse(s).is_err()
        {
            self.push(
                &member(path, key),
                "must be an absolute URI like https://example.com/",
            );
        }
    }

    fn array(
        &mut self,
        path: &str,
        map: &Map<String, Value>,
        key: &str,
        item: fn(&mut Self, &str, &Value),
    ) {
        let Some(value) = map.get(key) else { return };
        let path = member(path, key);
        match value.as_array() {
            Some(items) => {
                for (i, v) in items.iter().enumerate() {
                    item(self, &format!("{path}[{i}]"), v);
                }
            }
            None => self.push(&path, "must be an array"),
        }
    }

    fn string_item(&mut self, path: &str, value: &Value) {
        if !value.is_string() {
            self.push(path, "must be a string");
        }
    }

    fn repository(&mut self, path: &str, value: &Value) {
        let Some(map) = self.object(path, value) else {
            return;
        };
        self.known(path, map, &["url", "source", "id", "subfolder"]);
        self.uri_member(path, map, "url", true);
        self.string(path, map, "source", true);
        self.string(path, map, "id", false);
        self.string(path, map, "subfolder", false);
    }

    fn icon(&mut self, path: &str, value: &Value) {
        let Some(map) = self.object(path, value) else {
            return;
        };
        self.known(path, map, &["src", "mimeType", "sizes", "theme"]);
        if let Some(src) = self.string(path, map, "src", true)
            && (src.chars().count() > 255 || url::Url::parse(src).is_err())
        {
            self.push(
                &member(path, "src"),
                "must be an absolute URI of at most 255 characters",
            );
        }
        self.one_of(
            path,
            map,
            "mimeType",
            &[
                "image/png",
                "image/jpeg",
                "image/jpg",
                "image/svg+xml",
                "image/webp",
            ],
        );
        self.one_of(path, map, "theme", &["light", "dark"]);
        self.array(path, map, "sizes", |c, path, v| match v.as_str() {
            Some(s) if s == "any" || is_size(s) => {}
            _ => c.push(path, "must be WIDTHxHEIGHT like 48x48, or 'any'"),
        });
    }

    fn package(&mut self, path: &str, value: &Value) {
        let Some(map) = self.object(path, value) else {
            return;
        };
        self.known(
            path,
            map,
            &[
                "registryType",
                "registryBaseUrl",
                "identifier",
                "version",
                "fileSha256",
                "runtimeHint",
                "transport",
                "runtimeArguments",
                "packageArguments",
                "environmentVariables",
            ],
        );
        self.string(path, map, "registryType", true);
        self.uri_member(path, map, "registryBaseUrl", false);
        self.string(path, map, "identifier", true);
        if let Some(v) = self.string(path, map, "version", false)
            && (v.is_empty() || v == "latest")
        {
            self.push(
                &member(path, "version"),
                "must be an exact package version, not empty or 'latest'",
            );
        }
        if let Some(sha) = self.string(path, map, "fileSha256", false) {
            let ok = sha.len() == 64
                && sha
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !ok {
                self.push(
                    &member(path, "fileSha256"),
                    "must be 64 lowercase hex digits",
                );
            }
        }
        self.string(path, map, "runtimeHint", false);
        match map.get("transport") {
            Some(t) => self.transport(&member(path, "transport"), t, true),
            None => self.push(&member(path, "transport"), "is required"),
        }
        self.array(path, map, "runtimeArguments", Checker::argument);
        self.array(path, map, "packageArguments", Checker::argument);
        self.array(path, map, "environmentVariables", Checker::key_value);
    }

    /// Local transports allow stdio; remote ones only the HTTP transports plus `variables`.
    fn transport(&mut self, path: &str, value: &Value, local: bool) {
        let Some(map) = self.object(path, value) else {
            return;
        };
        let kinds: &[&str] = if local {
            &["stdio", "streamable-http", "sse"]
        } else {
            &["streamable-http", "sse"]
        };
        let Some(kind) = self.string(path, map, "type", true) else {
            return;
        };
        if !kinds.contains(&kind) {
            self.push(
                &member(path, "type"),
                format!("must be one of: {}", kinds.join(", ")),
            );
            return;
        }
        if kind == "stdio" {
            self.known(path, map, &["type"]);
            return;
        }
        let allowed: &[&str] = if local {
            &["type", "url", "headers"]
        } else {
            &["type", "url", "headers", "variables"]
        };
        self.known(path, map, allowed);
        if let Some(url) = self.string(path, map, "url", true)
            && !transport_url(url)
        {
            self.push(
                &member(path, "url"),
                "must be an http:// or https:// URL or start with a {variable}, without whitespace",
            );
        }
        self.array(path, map, "headers", Checker::key_value);
        if !local {
            self.variables(path, map);
        }
    }

    fn remote(&mut self, path: &str, value: &Value) {
        self.transport(path, value, false);
    }

    fn variables(&mut self, path: &str, map: &Map<String, Value>) {
        let Some(value) = map.get("variables") else {
            return;
        };
        let path = member(path, "variables");
        if let Some(vars) = self.object(&path, value) {
            for (name, input) in vars {
                self.input(&member(&path, name), input, &[]);
            }
        }
    }

    const INPUT_FIELDS: [&str; 8] = [
        "description",
        "isRequired",
        "format",
        "value",
        "isSecret",
        "default",
        "placeholder",
        "choices",
    ];

    /// Checks an `Input` whose object may also hold `extra` fields checked by the caller.
    fn input<'v>(
        &mut self,
        path: &str,
        value: &'v Value,
        extra: &[&str],
    ) -> Option<&'v Map<String, Value>> {
        let map = self.object(path, value)?;
        let allowed: Vec<&str> = Self::INPUT_FIELDS.iter().chain(extra).copied().collect();
        self.known(path, map, &allowed);
        for key in ["description", "value", "default", "placeholder"] {
            self.string(path, map, key, false);
        }
        self.boolean(path, map, "isRequired");
        self.boolean(path, map, "isSecret");
        self.one_of(
            path,
            map,
            "format",
            &["string", "number", "boolean", "filepath"],
        );
        self.array(path, map, "choices", Checker::string_item);
        Some(map)
    }

    fn input_with_variables<'v>(
        &mut self,
        path: &str,
        value: &'v Value,
        extra: &[&str],
    ) -> Option<&'v Map<String, Value>> {
        let mut fields = vec!["variables"];
        fields.extend_from_slice(extra);
        let map = self.input(path, value, &fields)?;
        self.variables(path, map);
        Some(map)
    }

    fn key_value(&mut self, path: &str, value: &Value) {
        if let Some(map) = self.input_with_variables(path, value, &["name"]) {
            self.string(path, map, "name", true);
        }
    }

    fn argument(&mut self, path: &str, value: &Value) {
        let kind = value.get("type").and_then(Value::as_str);
        match kind {
            Some("positional") => {
                let extra = ["type", "valueHint", "isRepeated"];
                if let Some(map) = self.input_with_variables(path, value, &extra) {
                    self.string(path, map, "valueHint", false);
                    self.boolean(path, map, "isRepeated");
                    if !map.contains_key("valueHint") && !map.contains_key("value") {
                        self.push(path, "a positional argument needs valueHint or value");
                    }
                }
            }
            Some("named") => {
                let extra = ["type", "name", "isRepeated"];
                if let Some(map) = self.input_with_variables(path, value, &extra) {
                    self.string(path, map, "name", true);
                    self.boolean(path, map, "isRepeated");
                }
            }
            _ => self.push(
                &member(path, "type"),
                "is required and must be 'positional' or 'named'",
            ),
        }
    }
}

fn is_size(s: &str) -> bool {
    s.split_once('x').is_some_and(|(w, h)| {
        !w.is_empty()
            && !h.is_empty()
            && w.bytes().all(|b| b.is_ascii_digit())
            && h.bytes().all(|b| b.is_ascii_digit())
    })
}

/// Appends a member to a JSON path, quoting keys that are not plain identifiers.
fn member(path: &str, key: &str) -> String {
    let plain = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$');
    if plain {
        format!("{path}.{key}")
    } else {
        format!("{path}[{}]", Value::String(key.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn minimal() -> Value {
        json!({"name": "io.example/weather", "description": "Weather", "version": "1.0.0"})
    }

    fn paths(v: &Value) -> Vec<String> {
        server_detail(v).into_iter().map(|e| e.path).collect()
    }

    #[test]
    fn accepts_a_full_document() {
        let v = json!({
            "$schema": "https://static.modelcontextprotocol.io/schemas/2025-12-11/server.schema.json",
            "name": "io.example/weather", "description": "Weather", "title": "Weather",
            "version": "1.0.0+build.7", "websiteUrl": "https://example.com",
            "repository": {"url": "https://github.com/example/weather", "source": "github", "subfolder": "srv"},
            "icons": [{"src": "https://example.com/i.png", "mimeType": "image/png", "sizes": ["48x48", "any"], "theme": "dark"}],
            "packages": [{
                "registryType": "npm", "identifier": "@example/weather", "version": "1.0.0",
                "fileSha256": "a".repeat(64),
                "transport": {"type": "stdio"},
                "runtimeArguments": [{"type": "named", "name": "--port", "value": "1"}],
                "packageArguments": [{"type": "positional", "valueHint": "dir", "variables": {"x": {"isSecret": true}}}],
                "environmentVariables": [{"name": "API_KEY", "isSecret": true, "format": "string"}]
            }],
            "remotes": [{"type": "streamable-http", "url": "https://{tenant}.example.com/mcp",
                         "headers": [{"name": "X-Key", "isRequired": true}], "variables": {"tenant": {"default": "a"}}},
                        {"type": "sse", "url": "{base}/sse"}],
            "_meta": {PUBLISHER_META_KEY: {"anything": [1, 2]}}
        });
        assert_eq!(server_detail(&v), vec![]);
    }

    #[test]
    fn reports_each_problem_at_its_path() {
        let cases: &[(&str, Value, &str)] = &[
            ("not an object", json!([1]), "$"),
            (
                "missing name",
                json!({"description": "d", "version": "1"}),
                "$.name",
            ),
            (
                "unknown top-level field",
                {
                    let mut v = minimal();
                    v["extra"] = json!(1);
                    v
                },
                "$.extra",
            ),
            (
                "name without namespace",
                {
                    let mut v = minimal();
                    v["name"] = json!("weather");
                    v
                },
                "$.name",
            ),
            (
                "name too short",
                {
                    let mut v = minimal();
                    v["name"] = json!("a/");
                    v
                },
                "$.name",
            ),
            (
                "description too long",
                {
                    let mut v = minimal();
                    v["description"] = json!("d".repeat(101));
                    v
                },
                "$.description",
            ),
            (
                "empty title",
                {
                    let mut v = minimal();
                    v["title"] = json!("");
                    v
                },
                "$.title",
            ),
            (
                "caret range",
                {
                    let mut v = minimal();
                    v["version"] = json!("^1.2");
                    v
                },
                "$.version",
            ),
            (
                "x range",
                {
                    let mut v = minimal();
                    v["version"] = json!("1.x");
                    v
                },
                "$.version",
            ),
            (
                "reserved latest",
                {
                    let mut v = minimal();
                    v["version"] = json!("latest");
                    v
                },
                "$.version",
            ),
            (
                "bad website",
                {
                    let mut v = minimal();
                    v["websiteUrl"] = json!("not a url");
                    v
                },
                "$.websiteUrl",
            ),
            (
                "repository needs source",
                {
                    let mut v = minimal();
                    v["repository"] = json!({"url": "https://x.io"});
                    v
                },
                "$.repository.source",
            ),
            (
                "remote url scheme",
                {
                    let mut v = minimal();
                    v["remotes"] = json!([{"type": "sse", "url": "ftp://x"}]);
                    v
                },
                "$.remotes[0].url",
            ),
            (
                "stdio is not remote",
                {
                    let mut v = minimal();
                    v["remotes"] = json!([{"type": "stdio"}]);
                    v
                },
                "$.remotes[0].type",
            ),
            (
                "package transport missing",
                {
                    let mut v = minimal();
                    v["packages"] = json!([{"registryType": "npm", "identifier": "x"}]);
                    v
                },
                "$.packages[0].transport",
            ),
            (
                "sha not hex",
                {
                    let mut v = minimal();
                    v["packages"] = json!([{"registryType": "npm", "identifier": "x", "fileSha256": "Z", "transport": {"type": "stdio"}}]);
                    v
                },
                "$.packages[0].fileSha256",
            ),
            (
                "positional needs hint",
                {
                    let mut v = minimal();
                    v["packages"] = json!([{"registryType": "npm", "identifier": "x", "transport": {"type": "stdio"}, "packageArguments": [{"type": "positional"}]}]);
                    v
                },
                "$.packages[0].packageArguments[0]",
            ),
            (
                "icon size pattern",
                {
                    let mut v = minimal();
                    v["icons"] = json!([{"src": "https://x.io/a.png", "sizes": ["big"]}]);
                    v
                },
                "$.icons[0].sizes[0]",
            ),
            (
                "official meta is not publishable",
                {
                    let mut v = minimal();
                    v["_meta"] = json!({"io.modelcontextprotocol.registry/official": {}});
                    v
                },
                "$._meta[\"io.modelcontextprotocol.registry/official\"]",
            ),
        ];
        for (why, doc, path) in cases {
            assert_eq!(paths(doc), vec![path.to_string()], "{why}");
        }
    }

    #[test]
    fn versions() {
        let cases = [
            ("1.2.3", true, "semver"),
            ("2024-01-01", true, "date versions are allowed"),
            ("v1", true, "non-semver exact"),
            ("1.0.0-rc.1", true, "prerelease"),
            ("~1.2.3", false, "tilde range"),
            (">=1", false, "comparison range"),
            ("1.*", false, "star wildcard"),
            ("1 - 2", false, "hyphen range has spaces"),
            ("1||2", false, "alternation"),
            ("", false, "empty"),
        ];
        for (v, ok, why) in cases {
            assert_eq!(version(v).is_ok(), ok, "{why}: {v}");
        }
        assert!(version(&"1".repeat(256)).is_err(), "too long");
    }

    #[test]
    fn caps_the_number_of_errors() {
        let remotes: Vec<Value> = (0..200).map(|_| json!({"type": "x"})).collect();
        let mut v = minimal();
        v["remotes"] = Value::Array(remotes);
        assert_eq!(server_detail(&v).len(), MAX_ERRORS);
    }
}
