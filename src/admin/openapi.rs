//! `GET /api/openapi.json`: the OpenAPI 3.1 document of the admin API and the webhooks, for
//! the billing system's developers to generate a client from.
//!
//! The document comes from the code: each handler carries its `#[utoipa::path]` (method, path,
//! parameters, request and answers), request and answer types derive their schemas, and each
//! module lists its handlers in a `Doc`. [`finish`] then adds what every route shares: the
//! bearer scheme, the error answers the token guard and the extractors give, and the servers
//! (the webhooks live on their own listener). The tests below walk the real routers and fail
//! when a route and the document disagree.
//!
//! What the daemon serves is that document as generated and committed in `docs/openapi.json`,
//! embedded in the binary: the code that builds it stays out of the binary (a Raspberry Pi's
//! 12 MiB budget), and serving it touches nothing but its own pages. The test
//! `the_served_document_is_the_one_the_code_generates` fails when the code and the file differ;
//! `PASARELA_WRITE_OPENAPI=1 cargo test --lib openapi` writes the file again.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa::OpenApi;
use utoipa::openapi::path::{Operation, ParameterIn, PathItem};
use utoipa::openapi::schema::{Schema, SchemaType, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::server::{ServerBuilder, ServerVariableBuilder};
use utoipa::openapi::{Content, ContentBuilder, Ref, RefOr, ResponseBuilder, Server};

/// Routes answered without the admin token.
pub const PUBLIC: &[&str] = &["/api/health", "/api/openapi.json"];
/// Where the webhook listener's routes start.
pub const WEBHOOKS: &str = "/webhooks/";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "pasarela",
        description = "The admin JSON API of pasarela, an SMS, WhatsApp and email gateway for small \
            ISPs, and the webhooks it takes. Every route but `/api/health` and `/api/openapi.json` \
            needs `Authorization: Bearer <token>` (`[admin] token`). Errors are \
            `{\"error\":{\"code\",\"message\",\"field\"?,\"items\"?}}`; the few answered by the \
            HTTP layer itself (a path id that is not a number, an unknown query parameter, a body \
            over a route's limit) are plain text.",
        license(name = "MIT")
    ),
    paths(openapi_json),
    components(schemas(crate::jsonapi::ErrorEnvelope, crate::jsonapi::ErrorBody)),
    tags(
        (name = "messages", description = "Send and follow messages"),
        (name = "status", description = "Health, status and this document"),
        (name = "customers", description = "The customer directory"),
        (name = "tickets", description = "Support tickets customers open by text"),
        (name = "billing events", description = "Payments and invoices from the billing system"),
        (name = "rules", description = "Keyword auto-replies, windows, groups, template preview"),
        (name = "outages", description = "Outages by zone"),
        (name = "modems", description = "USSD sessions on a GSM modem (the SIM's credit, operator menus)"),
        (name = "campaigns", description = "Bulk campaigns with preview, progress and report"),
        (name = "whatsapp", description = "WhatsApp templates and costs"),
        (name = "email", description = "Mail templates and test sends"),
        (name = "backup", description = "A copy of the database"),
        (name = "metrics", description = "Prometheus metrics (also on `[metrics] listen` without a token)"),
        (name = "webhooks", description = "Served on the `[webhooks]` listener (`webhooks.listen`, \
            e.g. port 8090), not on the admin one: each of these paths names that server. Each \
            webhook has its own proof (a signature, a token), never the admin token."),
    )
)]
struct Base;

/// The whole document, built now.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = Base::openapi();
    for part in [
        super::api::Doc::openapi(),
        super::rules_api::Doc::openapi(),
        super::backup::Doc::openapi(),
        super::whatsapp_api::Doc::openapi(),
        super::email_api::Doc::openapi(),
        super::metrics_api::Doc::openapi(),
        super::outage_api::Doc::openapi(),
        super::campaigns_api::Doc::openapi(),
        super::ussd_api::Doc::openapi(),
        crate::transport::android::webhook::Doc::openapi(),
        crate::transport::http_sms::webhook::Doc::openapi(),
        crate::transport::whatsapp::webhook::Doc::openapi(),
        crate::outage::alertmanager::Doc::openapi(),
    ] {
        doc.merge(part);
    }
    finish(&mut doc);
    doc
}

/// The document as generated from the code (checked by the tests), committed beside it.
pub const DOCUMENT: &str = include_str!("../../docs/openapi.json");

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "status",
    responses((status = 200, description = "the OpenAPI 3.1 document", body = serde_json::Value)))]
pub async fn openapi_json() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT).into_response()
}

fn error_content() -> Content {
    ContentBuilder::new()
        .schema(Some(Ref::from_schema_name("ErrorEnvelope")))
        .build()
}

fn text_content() -> Content {
    ContentBuilder::new()
        .schema(Some(Schema::Object(
            utoipa::openapi::ObjectBuilder::new()
                .schema_type(Type::String)
                .build(),
        )))
        .build()
}

/// Adds an error answer unless the route's own annotation gives that status; `plain` also
/// allows the text/plain body axum's extractors answer with.
fn ensure_error(op: &mut Operation, status: StatusCode, description: &str, plain: bool) {
    let key = status.as_u16().to_string();
    let entry = op.responses.responses.entry(key).or_insert_with(|| {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content("application/json", error_content())
                .build(),
        )
    });
    if plain && let RefOr::T(response) = entry {
        response
            .content
            .entry("text/plain".to_string())
            .or_insert_with(text_content);
    }
}

fn has_integer_path_param(op: &Operation) -> bool {
    op.parameters.iter().flatten().any(|p| {
        p.parameter_in == ParameterIn::Path
            && matches!(&p.schema, Some(RefOr::T(Schema::Object(o)))
                if o.schema_type == SchemaType::Type(Type::Integer))
    })
}

fn has_query_params(op: &Operation) -> bool {
    op.parameters
        .iter()
        .flatten()
        .any(|p| p.parameter_in == ParameterIn::Query)
}

/// Every operation of a path, with its method.
pub fn operations(item: &PathItem) -> Vec<(&'static str, &Operation)> {
    [
        ("GET", &item.get),
        ("PUT", &item.put),
        ("POST", &item.post),
        ("DELETE", &item.delete),
        ("PATCH", &item.patch),
        ("HEAD", &item.head),
        ("OPTIONS", &item.options),
        ("TRACE", &item.trace),
    ]
    .into_iter()
    .filter_map(|(m, op)| op.as_ref().map(|op| (m, op)))
    .collect()
}

fn operations_mut(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.patch,
        &mut item.head,
        &mut item.options,
        &mut item.trace,
    ]
    .into_iter()
    .flatten()
}

fn listener(description: &str, port: &str) -> Server {
    ServerBuilder::new()
        .url("{scheme}://{host}")
        .description(Some(description))
        .parameter(
            "scheme",
            ServerVariableBuilder::new()
                .default_value("http")
                .enum_values(Some(["http", "https"])),
        )
        .parameter(
            "host",
            ServerVariableBuilder::new()
                .default_value(format!("127.0.0.1:{port}"))
                .description(Some("host and port of the listener")),
        )
        .build()
}

/// What every route shares: servers, the bearer scheme, and the error answers of the token
/// guard (401, 503), of the JSON body reader (400, 413) and of axum's path and query
/// extractors (400 as plain text), and the internal error (500).
fn finish(doc: &mut utoipa::openapi::OpenApi) {
    doc.servers = Some(vec![listener(
        "the admin listener (`admin.listen`): /api/… and /metrics",
        "8080",
    )]);
    let components = doc.components.get_or_insert_with(Default::default);
    components.security_schemes.insert(
        "bearer".into(),
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some("the admin token: `admin.token` or `admin.token_file`"))
                .build(),
        ),
    );
    components.security_schemes.insert(
        "alertmanager_token".into(),
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "`webhooks.alertmanager.token` (alertmanager.yml's http_config.authorization)",
                ))
                .build(),
        ),
    );
    doc.security = Some(vec![SecurityRequirement::new(
        "bearer",
        Vec::<String>::new(),
    )]);
    let webhooks = listener(
        "the webhook listener (`webhooks.listen`), not the admin one",
        "8090",
    );
    for (path, item) in doc.paths.paths.iter_mut() {
        let hook = path.starts_with(WEBHOOKS);
        if hook {
            item.servers = Some(vec![webhooks.clone()]);
        }
        for op in operations_mut(item) {
            if PUBLIC.contains(&path.as_str()) || (hook && op.security.is_none()) {
                op.security = Some(Vec::new());
            }
            if !hook && !PUBLIC.contains(&path.as_str()) {
                ensure_error(
                    op,
                    StatusCode::UNAUTHORIZED,
                    "`unauthorized`: no bearer token, or a wrong one",
                    false,
                );
                ensure_error(
                    op,
                    StatusCode::SERVICE_UNAVAILABLE,
                    "`no_token_configured`: the API is off until a token is set; or \
                     `shutting_down`",
                    false,
                );
            }
            let plain_400 = has_integer_path_param(op) || (!hook && has_query_params(op));
            if op.request_body.is_some() {
                ensure_error(
                    op,
                    StatusCode::BAD_REQUEST,
                    "`invalid_json` (not JSON, empty, or not this route's shape) or \
                     `invalid_field` (`field` names it)",
                    plain_400,
                );
                ensure_error(
                    op,
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "`payload_too_large`: the body is over this route's limit",
                    true,
                );
            } else if plain_400 {
                ensure_error(
                    op,
                    StatusCode::BAD_REQUEST,
                    "a path id that is not a number or an unknown query parameter (plain \
                     text), or a parameter's value is wrong (`invalid_field`)",
                    true,
                );
            }
            if !PUBLIC.contains(&path.as_str()) {
                ensure_error(
                    op,
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "`internal`: see `journalctl -u pasarela`",
                    false,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::transport::kind::Kind;

    /// The methods a route can answer that the document must list (HEAD comes with GET).
    const METHODS: &[&str] = &["get", "post", "put", "delete", "patch"];

    /// (METHOD, path) of every route of a router, read from its `Debug` form: the route table
    /// (`RouteId(n): "/path"`) and each route's method router (`get: None`, `post: BoxedHandler`…).
    /// axum has no public route listing; if its `Debug` form changes, this fails loudly.
    fn walk<S>(router: &axum::Router<S>) -> BTreeSet<(String, String)> {
        let text = format!("{router:?}");
        let text = text
            .split("fallback_router:")
            .next()
            .expect("split gives one part");
        let mut paths = std::collections::HashMap::new();
        let mut methods = std::collections::HashMap::new();
        let mut rest = text;
        while let Some(at) = rest.find("RouteId(") {
            rest = &rest[at + "RouteId(".len()..];
            let close = rest.find(')').expect("RouteId(n)");
            let id: u32 = rest[..close].parse().expect("a route id");
            let after = rest[close + 1..]
                .strip_prefix(": ")
                .expect("`RouteId(n): ` in a map");
            let segment = &after[..after.find("RouteId(").unwrap_or(after.len())];
            if let Some(quoted) = after.strip_prefix('"') {
                paths.insert(
                    id,
                    quoted[..quoted.find('"').expect("quoted path")].to_string(),
                );
            } else if segment.starts_with("MethodRouter(") {
                let set: Vec<String> = METHODS
                    .iter()
                    .filter(|m| {
                        let field = format!(" {m}: ");
                        let at = segment.find(&field).expect("every method field");
                        !segment[at + field.len()..].starts_with("None")
                    })
                    .map(|m| m.to_uppercase())
                    .collect();
                methods.insert(id, set);
            } else {
                panic!("a route that is not a method router (a nested service?): {segment:.80}");
            }
        }
        let mut out = BTreeSet::new();
        for (id, path) in &paths {
            for m in methods.get(id).expect("each path has its method router") {
                out.insert((m.clone(), path.clone()));
            }
        }
        out
    }

    /// Every route the admin listener's API and the webhook listener serve.
    fn served() -> BTreeSet<(String, String)> {
        let mut all = walk(&super::super::public_routes());
        all.extend(walk(&super::super::protected_routes()));
        let hook = |kind: &dyn Kind| format!("/webhooks/{}", kind.name());
        all.extend(walk(&axum::Router::new().nest(
            &hook(&crate::transport::android::KIND),
            crate::transport::android::webhook::routes(),
        )));
        all.extend(walk(&axum::Router::new().nest(
            &hook(&crate::transport::http_sms::KIND),
            crate::transport::http_sms::webhook::routes(),
        )));
        all.extend(walk(&axum::Router::new().nest(
            &hook(&crate::transport::whatsapp::KIND),
            crate::transport::whatsapp::webhook::routes(),
        )));
        all.extend(walk(&crate::outage::alertmanager::routes()));
        all
    }

    fn documented(doc: &utoipa::openapi::OpenApi) -> BTreeSet<(String, String)> {
        doc.paths
            .paths
            .iter()
            .flat_map(|(path, item)| {
                operations(item)
                    .into_iter()
                    .map(move |(m, _)| (m.to_string(), path.clone()))
            })
            .collect()
    }

    #[test]
    fn the_served_document_is_the_one_the_code_generates() {
        let generated = document().to_pretty_json().unwrap() + "\n";
        if std::env::var_os("PASARELA_WRITE_OPENAPI").is_some() {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json");
            std::fs::write(path, &generated).unwrap();
            return;
        }
        let served: serde_json::Value = serde_json::from_str(DOCUMENT).unwrap();
        let code: serde_json::Value = serde_json::from_str(&generated).unwrap();
        assert!(
            served == code,
            "docs/openapi.json differs from what the code generates: run \
             `PASARELA_WRITE_OPENAPI=1 cargo test --lib openapi` and commit the file"
        );
    }

    #[test]
    fn every_route_is_documented_and_every_documented_route_exists() {
        let served = served();
        // The walk itself works: the message routes and a webhook are found.
        assert!(served.contains(&("POST".into(), "/api/messages".into())));
        assert!(served.contains(&("GET".into(), "/api/campaigns/{id}/report.csv".into())));
        assert!(served.contains(&("POST".into(), "/webhooks/android/{name}".into())));
        assert!(served.contains(&("GET".into(), "/webhooks/whatsapp".into())));
        let documented = documented(&document());
        let undocumented: Vec<_> = served.difference(&documented).collect();
        let phantom: Vec<_> = documented.difference(&served).collect();
        assert!(
            undocumented.is_empty() && phantom.is_empty(),
            "routes missing from the OpenAPI document: {undocumented:?}; \
             documented routes no router serves: {phantom:?}"
        );
    }

    #[test]
    fn the_walk_sees_a_route_added_to_a_router() {
        async fn extra() {}
        let router = super::super::protected_routes()
            .route("/api/not-documented", axum::routing::patch(extra));
        let walked = walk(&router);
        assert!(walked.contains(&("PATCH".into(), "/api/not-documented".into())));
        assert!(!documented(&document()).contains(&("PATCH".into(), "/api/not-documented".into())));
    }

    /// `(path)` of each route the README's "The admin API" table names, with the table's
    /// shorthand (`/reopen` after `/api/tickets/{id}/close`) expanded.
    fn readme_table_paths() -> BTreeSet<String> {
        let readme = include_str!("../../README.md");
        let section = readme
            .split("\n## The admin API\n")
            .nth(1)
            .expect("the README has \"## The admin API\"");
        let section = section.split("\n## ").next().expect("a section");
        let mut out = BTreeSet::new();
        for row in section.lines().filter(|l| l.starts_with("| `")) {
            let first_cell = row.split(" | ").next().expect("a cell");
            let mut last_full: Option<String> = None;
            for piece in first_cell.split('`').skip(1).step_by(2) {
                for word in piece.split_whitespace() {
                    let word = word.trim_matches(',');
                    if word.starts_with("/api/") || word == "/metrics" {
                        out.insert(word.to_string());
                        last_full = Some(word.to_string());
                    } else if let (Some(suffix), Some(full)) = (word.strip_prefix('/'), &last_full)
                    {
                        let parent = full.rsplit_once('/').map(|(p, _)| p).expect("a parent");
                        out.insert(format!("{parent}/{suffix}"));
                    }
                }
            }
        }
        out
    }

    #[test]
    fn the_readme_api_table_is_in_the_document() {
        let table = readme_table_paths();
        // The table's shorthand was read: both forms are there.
        assert!(table.contains("/api/tickets/{id}/assign"), "{table:?}");
        assert!(table.contains("/api/outages/{id}/resolve"), "{table:?}");
        assert!(table.contains("/api/rules"), "{table:?}");
        assert!(
            table.len() >= 25,
            "only {} paths read: {table:?}",
            table.len()
        );
        let doc = document();
        let missing: Vec<_> = table
            .iter()
            .filter(|p| !doc.paths.paths.contains_key(*p))
            .collect();
        assert!(
            missing.is_empty(),
            "README paths not in the document: {missing:?}"
        );
    }

    #[test]
    fn the_document_is_openapi_3_1_with_the_shared_errors() {
        let json: serde_json::Value =
            serde_json::from_str(&document().to_json().expect("serializes")).expect("JSON");
        assert!(
            json["openapi"]
                .as_str()
                .is_some_and(|v| v.starts_with("3.1"))
        );
        assert_eq!(
            json["components"]["securitySchemes"]["bearer"]["scheme"],
            "bearer"
        );
        let send = &json["paths"]["/api/messages"]["post"];
        for status in ["202", "400", "401", "413", "500", "503"] {
            assert!(
                send["responses"][status].is_object(),
                "POST /api/messages {status}"
            );
        }
        // The public routes need no token; the webhooks name their own listener.
        assert_eq!(
            json["paths"]["/api/health"]["get"]["security"],
            serde_json::json!([])
        );
        assert!(json["paths"]["/api/health"]["get"]["responses"]["401"].is_null());
        let hook = &json["paths"]["/webhooks/android/{name}"];
        assert!(
            hook["servers"][0]["description"]
                .as_str()
                .is_some_and(|d| d.contains("webhooks.listen"))
        );
        assert!(
            hook["post"]["responses"]["401"]["description"]
                .as_str()
                .is_some_and(|d| d.contains("bad_signature"))
        );
        // axum's own plain-text 400 where a path id is a number.
        let ticket = &json["paths"]["/api/tickets/{id}"]["get"]["responses"]["400"]["content"];
        assert!(ticket["text/plain"].is_object(), "{ticket}");
    }
}
