//! The OpenAPI 3.1 document of every endpoint, built here from one table of operations and a
//! set of schemas, served at `GET /openapi.json` (public) and committed as
//! `server/openapi.json`. Tests keep the committed file equal to this document and check that
//! every route registered in `app()` is documented (and nothing else). Regenerate the file
//! with `PLATEWATCH_UPDATE_OPENAPI=1 cargo test -p platewatch-server openapi`.

use std::sync::OnceLock;

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use crate::AppState;

/// Which bearer token an operation takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    /// No authentication.
    Public,
    /// A session token (from login).
    Session,
    /// A device token (from device registration).
    Device,
    /// Either kind.
    Any,
}

/// One documented operation.
struct Op {
    method: &'static str,
    path: &'static str,
    id: &'static str,
    tag: &'static str,
    summary: &'static str,
    description: &'static str,
    token: Token,
    roles: &'static [&'static str],
    params: Vec<Value>,
    body: Option<Value>,
    ok: (&'static str, &'static str, Option<Value>),
    errors: &'static [&'static str],
}

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn json_content(schema: Value) -> Value {
    json!({ "application/json": { "schema": schema } })
}

fn json_body(name: &str) -> Option<Value> {
    Some(json!({ "required": true, "content": json_content(schema_ref(name)) }))
}

fn ok_json(
    code: &'static str,
    desc: &'static str,
    name: &str,
) -> (&'static str, &'static str, Option<Value>) {
    (code, desc, Some(json_content(schema_ref(name))))
}

fn param(name: &str, location: &str, required: bool, schema: Value, description: &str) -> Value {
    json!({
        "name": name,
        "in": location,
        "required": required,
        "schema": schema,
        "description": description,
    })
}

fn path_param(name: &str, schema: Value, description: &str) -> Value {
    param(name, "path", true, schema, description)
}

fn string() -> Value {
    json!({ "type": "string" })
}

fn integer() -> Value {
    json!({ "type": "integer", "format": "int64" })
}

const AUTH_ERRORS: &[&str] = &["401", "403"];

/// Every operation the server answers. Keep in step with `app()` (a test checks).
fn operations() -> Vec<Op> {
    let query_desc = "Requires a timeframe (`from_ms`, `to_ms`), a configured `reason_code` and a \
        `case_number` or `justification`; optionally `on_behalf_of`. Audited (with flags for \
        very large areas or sensitive locations). At 10,000 or more matches the answer is a \
        warning with the count; repeat with `confirm: true` for the 5,000 most recent.";
    vec![
        Op {
            method: "post",
            path: "/v1/login",
            id: "login",
            tag: "identity",
            summary: "Log in, acknowledging the current rules of behaviour",
            description: "Returns a session token (12 h). 403 with `code: rules_not_acknowledged` \
                and the rules text when `acknowledge_rules_version` is not the current version, \
                or when the account is disabled. Failed attempts are counted per username and \
                per client address: past the free failures (10 per user, 20 per address by \
                default) each is locked for a time that doubles with every further failure \
                (429 with `Retry-After`, before any password is checked).",
            token: Token::Public,
            roles: &[],
            params: vec![],
            body: json_body("LoginRequest"),
            ok: ok_json("200", "Logged in", "LoginResponse"),
            errors: &["400", "401", "403", "429"],
        },
        Op {
            method: "post",
            path: "/v1/logout",
            id: "logout",
            tag: "identity",
            summary: "End this login session",
            description: "The session token is refused from then on.",
            token: Token::Session,
            roles: &["officer", "analyst", "admin", "auditor"],
            params: vec![],
            body: None,
            ok: ("204", "Logged out", None),
            errors: &["401", "403"],
        },
        Op {
            method: "post",
            path: "/v1/devices",
            id: "registerDevice",
            tag: "identity",
            summary: "Register a device for the logged-in user",
            description: "Returns the device token once; only its hash is stored. A device token \
                only does device work (upload, hot list sync, reason codes, its user's scanning \
                sessions, its own renewal) and expires (30 days by default) unless renewed.",
            token: Token::Session,
            roles: &["officer", "analyst", "admin"],
            params: vec![],
            body: json_body("RegisterDevice"),
            ok: ok_json("201", "Registered", "DeviceToken"),
            errors: &["400", "401", "403"],
        },
        Op {
            method: "post",
            path: "/v1/devices/renew",
            id: "renewDevice",
            tag: "identity",
            summary: "Rotate this device's token",
            description: "Returns a new token with a new lifetime; the token used for the call \
                stays valid for the renewal grace (1 h by default), so an answer lost on the way \
                does not strand the device.",
            token: Token::Device,
            roles: &["officer", "analyst", "admin", "auditor"],
            params: vec![],
            body: None,
            ok: ok_json("200", "Renewed", "RenewedToken"),
            errors: &["401", "403"],
        },
        Op {
            method: "delete",
            path: "/v1/devices/{id}",
            id: "revokeDevice",
            tag: "identity",
            summary: "Revoke a device token at once",
            description: "",
            token: Token::Session,
            roles: &["admin"],
            params: vec![path_param("id", integer(), "Device id")],
            body: None,
            ok: ("204", "Revoked", None),
            errors: &["400", "401", "403", "404"],
        },
        Op {
            method: "get",
            path: "/v1/rules",
            id: "getRules",
            tag: "identity",
            summary: "The current rules of behaviour",
            description: "Any authenticated user, whether or not they acknowledged them.",
            token: Token::Any,
            roles: &["officer", "analyst", "admin", "auditor"],
            params: vec![],
            body: None,
            ok: ok_json("200", "The rules", "Rules"),
            errors: &["401", "404"],
        },
        Op {
            method: "get",
            path: "/v1/reason-codes",
            id: "getReasonCodes",
            tag: "identity",
            summary: "The configured reason codes, in order",
            description: "A scanning session or a query must give one of them; devices check a \
                code against this list before they start a session.",
            token: Token::Any,
            roles: &["officer", "analyst", "admin", "auditor"],
            params: vec![],
            body: None,
            ok: ok_json("200", "The reason codes", "ReasonCodes"),
            errors: AUTH_ERRORS,
        },
        Op {
            method: "put",
            path: "/v1/rules",
            id: "setRules",
            tag: "identity",
            summary: "Publish a new version of the rules of behaviour",
            description: "Every user must acknowledge it at their next login.",
            token: Token::Session,
            roles: &["admin"],
            params: vec![],
            body: json_body("SetRules"),
            ok: ok_json("200", "The new rules", "Rules"),
            errors: &["400", "401", "403"],
        },
        Op {
            method: "post",
            path: "/v1/users",
            id: "createUser",
            tag: "identity",
            summary: "Create a user",
            description: "Argon2id password hash; passwords of at least 12 characters.",
            token: Token::Session,
            roles: &["admin"],
            params: vec![],
            body: json_body("CreateUser"),
            ok: ok_json("201", "Created", "UserCreated"),
            errors: &["400", "401", "403", "409"],
        },
        Op {
            method: "patch",
            path: "/v1/users/{id}",
            id: "updateUser",
            tag: "identity",
            summary: "Disable or enable a user",
            description: "A disabled user's session and device tokens are all refused at once, \
                and they cannot log in. An admin cannot disable themselves.",
            token: Token::Session,
            roles: &["admin"],
            params: vec![path_param("id", integer(), "User id")],
            body: json_body("PatchUser"),
            ok: ok_json("200", "The user", "UserState"),
            errors: &["400", "401", "403", "404"],
        },
        Op {
            method: "post",
            path: "/v1/users/{id}/revoke-sessions",
            id: "revokeUserSessions",
            tag: "identity",
            summary: "End every login session of a user",
            description: "Device tokens are revoked one by one, or all at once by disabling the user.",
            token: Token::Session,
            roles: &["admin"],
            params: vec![path_param("id", integer(), "User id")],
            body: None,
            ok: ok_json("200", "How many sessions were ended", "SessionsRevoked"),
            errors: &["400", "401", "403", "404"],
        },
        Op {
            method: "post",
            path: "/v1/encounters",
            id: "uploadEncounters",
            tag: "encounters",
            summary: "Upload a batch of encounters",
            description: "Idempotent by the client-generated id; every row is validated on its \
                own and answered `stored`, `duplicate` or `rejected` with a reason.",
            token: Token::Device,
            roles: &["officer", "analyst"],
            params: vec![],
            body: json_body("EncounterBatch"),
            ok: ok_json("200", "Per-row results", "EncounterUploadResponse"),
            errors: &["400", "401", "403", "413"],
        },
        Op {
            method: "post",
            path: "/v1/sessions",
            id: "startSession",
            tag: "encounters",
            summary: "Start a scanning session",
            description: "Records who scans, on whose behalf, why (reason code) and the case \
                number or justification. 201 with the session; 200 when the same user \
                registers the same id again. Audited.",
            token: Token::Any,
            roles: &["officer", "analyst"],
            params: vec![],
            body: json_body("StartSession"),
            ok: ok_json("201", "Started", "ScanSession"),
            errors: &["400", "401", "403", "409"],
        },
        Op {
            method: "post",
            path: "/v1/sessions/{id}/end",
            id: "endSession",
            tag: "encounters",
            summary: "End a scanning session",
            description: "Only the user who started it; 409 when it had ended already. Audited.",
            token: Token::Any,
            roles: &["officer", "analyst"],
            params: vec![path_param(
                "id",
                json!({ "type": "string", "format": "uuid" }),
                "Session id",
            )],
            body: None,
            ok: ok_json("200", "Ended", "ScanSession"),
            errors: &["400", "401", "403", "404", "409"],
        },
        Op {
            method: "post",
            path: "/v1/queries/plate",
            id: "queryPlate",
            tag: "queries",
            summary: "Encounters of a full plate (+ state)",
            description: query_desc,
            token: Token::Session,
            roles: &["officer", "analyst"],
            params: vec![],
            body: json_body("PlateQuery"),
            ok: ok_json("200", "Matches (or a warning to confirm)", "QueryResponse"),
            errors: &["400", "401", "403"],
        },
        Op {
            method: "post",
            path: "/v1/queries/partial",
            id: "queryPartial",
            tag: "queries",
            summary: "Encounters of a partial plate with wildcards (`AB*123`, `XY*7*9`)",
            description: "Needs the `enhanced_queries` permission. Same rules as plate queries.",
            token: Token::Session,
            roles: &["officer", "analyst"],
            params: vec![],
            body: json_body("PartialQuery"),
            ok: ok_json("200", "Matches (or a warning to confirm)", "QueryResponse"),
            errors: &["400", "401", "403"],
        },
        Op {
            method: "post",
            path: "/v1/queries/polygon",
            id: "queryPolygon",
            tag: "queries",
            summary: "Encounters inside one or more polygons",
            description: "Needs the `enhanced_queries` permission. Same rules as plate queries.",
            token: Token::Session,
            roles: &["officer", "analyst"],
            params: vec![],
            body: json_body("PolygonQuery"),
            ok: ok_json("200", "Matches (or a warning to confirm)", "QueryResponse"),
            errors: &["400", "401", "403"],
        },
        Op {
            method: "post",
            path: "/v1/queries/common",
            id: "queryCommon",
            tag: "queries",
            summary: "Plates seen in at least `min_areas` (default 2) of the polygons",
            description: "Needs the `enhanced_queries` permission. Same rules as plate queries.",
            token: Token::Session,
            roles: &["officer", "analyst"],
            params: vec![],
            body: json_body("CommonPlateQuery"),
            ok: ok_json("200", "Matches (or a warning to confirm)", "QueryResponse"),
            errors: &["400", "401", "403"],
        },
        Op {
            method: "get",
            path: "/v1/audit/verify",
            id: "verifyAudit",
            tag: "audit",
            summary: "Walk the audit log's hash chain",
            description: "",
            token: Token::Session,
            roles: &["auditor", "admin"],
            params: vec![],
            body: None,
            ok: ok_json("200", "Chain status", "ChainReport"),
            errors: AUTH_ERRORS,
        },
        Op {
            method: "get",
            path: "/v1/audit/export",
            id: "exportAudit",
            tag: "audit",
            summary: "Export the audit rows of a time range as CSV or JSON",
            description: "Rows with `from <= at_ms < to`, in chain order, with their hashes (so \
                the segment can be checked). At most 1,000,000 rows. The export is itself \
                audited.",
            token: Token::Session,
            roles: &["auditor"],
            params: vec![
                param(
                    "from",
                    "query",
                    true,
                    string(),
                    "Start (inclusive): Unix ms, YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS[.fff]]Z",
                ),
                param("to", "query", true, string(), "End (exclusive), same forms"),
                param(
                    "format",
                    "query",
                    false,
                    json!({ "type": "string", "enum": ["json", "csv"], "default": "json" }),
                    "Document format",
                ),
            ],
            body: None,
            ok: (
                "200",
                "The export",
                Some(json!({
                    "application/json": { "schema": schema_ref("AuditExport") },
                    "text/csv": { "schema": { "type": "string", "description": "Header line then one line per row (RFC 4180): seq, at_ms, user_id, username, on_behalf_of, action, outcome, reason, justification, criteria, result_count, client, prev_hash, hash" } }
                })),
            ),
            errors: &["400", "401", "403"],
        },
        Op {
            method: "get",
            path: "/v1/audit/checkpoints",
            id: "auditCheckpoints",
            tag: "audit",
            summary: "The signed checkpoints of the audit chain's head",
            description: "Each checkpoint is an ed25519 signature (key: `GET /v1/audit/key`) over \
                `platewatch audit checkpoint v1\\nseq S\\nhash H\\nkeyed_from K\\nat_ms T\\nkey_id I\\n`. \
                The server signs one every 10 minutes (configurable) and after every export. \
                Keep copies outside the server: `platewatch audit verify --checkpoints FILE` \
                then finds any rewrite, renumbering or truncation of the rows they cover. The \
                newest 10,000, oldest first.",
            token: Token::Session,
            roles: &["auditor", "admin"],
            params: vec![param(
                "since_ms",
                "query",
                false,
                integer(),
                "Only checkpoints signed at or after this instant (Unix ms)",
            )],
            body: None,
            ok: ok_json(
                "200",
                "The signing key and the checkpoints",
                "CheckpointList",
            ),
            errors: &["400", "401", "403"],
        },
        Op {
            method: "get",
            path: "/v1/audit/key",
            id: "auditKey",
            tag: "audit",
            summary: "The ed25519 public key that verifies audit checkpoints",
            description: "Not the hot list key. Auditors pin it (`platewatch audit verify \
                --public-key FILE` takes this document).",
            token: Token::Session,
            roles: &["auditor", "admin"],
            params: vec![],
            body: None,
            ok: ok_json("200", "The key", "PublicKeyInfo"),
            errors: AUTH_ERRORS,
        },
        Op {
            method: "get",
            path: "/v1/hotlists",
            id: "listHotlists",
            tag: "hotlists",
            summary: "Every published list with its version and live entry count",
            description: "",
            token: Token::Any,
            roles: &["officer", "analyst", "admin"],
            params: vec![],
            body: None,
            ok: ok_json("200", "The lists", "HotlistIndex"),
            errors: AUTH_ERRORS,
        },
        Op {
            method: "post",
            path: "/v1/hotlists",
            id: "publishHotlist",
            tag: "hotlists",
            summary: "Publish a hot list file",
            description: "The file is the raw body (any content type but multipart), or the \
                `file` part of a multipart/form-data body whose other parts may carry the \
                parameters. Parsed with the core importers (NCIC fixed width, NCIC CSV, \
                California, delimited); rejected lines come back with their line number and \
                reason. `replace` makes the file the whole list (missing entries are removed); \
                `merge` only adds and updates. Any change bumps the version by one; a file that \
                changes nothing does not. A file without a single valid entry publishes \
                nothing (400). Audited.",
            token: Token::Session,
            roles: &["admin"],
            params: vec![
                param(
                    "list",
                    "query",
                    true,
                    json!({ "type": "string", "pattern": "^[A-Za-z0-9._-]*[A-Za-z0-9_-][A-Za-z0-9._-]*(?![\\s\\S])", "maxLength": 64 }),
                    "List name (or a multipart field)",
                ),
                param(
                    "format",
                    "query",
                    false,
                    json!({ "type": "string", "enum": ["auto", "ncic-fixed", "ncic-csv", "california", "delimited"], "default": "auto" }),
                    "File format",
                ),
                param(
                    "source",
                    "query",
                    false,
                    json!({ "type": "string", "enum": ["ncic", "state", "agency", "officer"] }),
                    "Source recorded on the entries (default: by format)",
                ),
                param(
                    "category",
                    "query",
                    false,
                    schema_ref("Category"),
                    "Category for formats that carry none (default: stolen_vehicle)",
                ),
                param(
                    "mode",
                    "query",
                    false,
                    json!({ "type": "string", "enum": ["replace", "merge"], "default": "replace" }),
                    "How the file changes the list",
                ),
                param(
                    "max_age_secs",
                    "query",
                    false,
                    json!({ "type": "integer", "minimum": 1 }),
                    "Age after which devices flag the list stale (default: configured, 86400)",
                ),
            ],
            body: Some(json!({
                "required": true,
                "content": {
                    "text/plain": { "schema": { "type": "string" } },
                    // A hot list file is text: the server refuses bodies that are not UTF-8, so the
                    // document says "string" (text), not "binary" (any bytes).
                    "application/octet-stream": { "schema": {
                        "type": "string",
                        "description": "The file's bytes, which must be UTF-8 text"
                    } },
                    "multipart/form-data": { "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            "file": { "type": "string", "description": "The file: UTF-8 text" },
                            "list": { "type": "string" },
                            "format": { "type": "string" },
                            "source": { "type": "string" },
                            "category": { "type": "string" },
                            "mode": { "type": "string" },
                            "max_age_secs": { "type": "integer" }
                        }
                    } }
                }
            })),
            ok: ok_json("200", "Published (or unchanged)", "HotlistUploadResponse"),
            errors: &["400", "401", "403", "413"],
        },
        Op {
            method: "get",
            path: "/v1/hotlists/key",
            id: "hotlistKey",
            tag: "hotlists",
            summary: "The ed25519 public key that verifies hot list payloads",
            description: "Devices pin it (or have it configured) and verify every payload with \
                `platewatch_core::hotlist::signed::verify`.",
            token: Token::Any,
            roles: &["officer", "analyst", "admin", "auditor"],
            params: vec![],
            body: None,
            ok: ok_json("200", "The key", "PublicKeyInfo"),
            errors: &["401"],
        },
        Op {
            method: "delete",
            path: "/v1/hotlists/{name}",
            id: "retireHotlist",
            tag: "hotlists",
            summary: "Retire a list: remove every entry (devices drop them at the next delta)",
            description: "Audited.",
            token: Token::Session,
            roles: &["admin"],
            params: vec![path_param(
                "name",
                json!({ "type": "string", "pattern": "^[A-Za-z0-9._-]*[A-Za-z0-9_-][A-Za-z0-9._-]*(?![\\s\\S])", "maxLength": 64 }),
                "List name",
            )],
            body: None,
            ok: ok_json("200", "Retired", "PublishOutcome"),
            errors: &["400", "401", "403", "404"],
        },
        Op {
            method: "get",
            path: "/v1/hotlists/{name}/snapshot",
            id: "hotlistSnapshot",
            tag: "hotlists",
            summary: "Every live entry of a list, signed",
            description: "The `payload` decodes to a HotlistPayload with `update.kind = snapshot`.",
            token: Token::Device,
            roles: &["officer", "analyst", "admin"],
            params: vec![path_param(
                "name",
                json!({ "type": "string", "pattern": "^[A-Za-z0-9._-]*[A-Za-z0-9_-][A-Za-z0-9._-]*(?![\\s\\S])", "maxLength": 64 }),
                "List name",
            )],
            body: None,
            ok: ok_json("200", "Signed snapshot", "SignedHotlist"),
            errors: &["400", "401", "403", "404"],
        },
        Op {
            method: "get",
            path: "/v1/hotlists/{name}/delta",
            id: "hotlistDelta",
            tag: "hotlists",
            summary: "The changes to a list since a version, signed",
            description: "The `payload` decodes to a HotlistPayload with `update.kind = delta`: \
                remove by key, then add (an added entry whose key exists replaces it). 409 when \
                `since` is newer than the list: fetch a snapshot.",
            token: Token::Device,
            roles: &["officer", "analyst", "admin"],
            params: vec![
                path_param(
                    "name",
                    json!({ "type": "string", "pattern": "^[A-Za-z0-9._-]*[A-Za-z0-9_-][A-Za-z0-9._-]*(?![\\s\\S])", "maxLength": 64 }),
                    "List name",
                ),
                param(
                    "since",
                    "query",
                    true,
                    json!({ "type": "integer", "format": "int64", "minimum": 0 }),
                    "The version the device holds",
                ),
            ],
            body: None,
            ok: ok_json("200", "Signed delta", "SignedHotlist"),
            errors: &["400", "401", "403", "404", "409"],
        },
        Op {
            method: "get",
            path: "/v1/holds",
            id: "listHolds",
            tag: "retention",
            summary: "Case holds (open ones, or all with `all=true`)",
            description: "",
            token: Token::Session,
            roles: &["analyst", "admin", "auditor"],
            params: vec![param(
                "all",
                "query",
                false,
                json!({ "type": "boolean", "default": false }),
                "Include released holds",
            )],
            body: None,
            ok: ok_json("200", "Holds, newest first", "CaseHoldList"),
            errors: &["400", "401", "403"],
        },
        Op {
            method: "post",
            path: "/v1/holds",
            id: "createHold",
            tag: "retention",
            summary: "Put a case on hold: its encounters survive retention",
            description: "Encounters whose `case_number` has an open hold are not deleted by \
                retention. One open hold per case (409). Audited.",
            token: Token::Session,
            roles: &["analyst"],
            params: vec![],
            body: json_body("HoldRequest"),
            ok: ok_json("201", "Held", "CaseHold"),
            errors: &["400", "401", "403", "409"],
        },
        Op {
            method: "delete",
            path: "/v1/holds/{id}",
            id: "releaseHold",
            tag: "retention",
            summary: "Release a case hold",
            description: "The case's encounters are subject to retention again. Audited with \
                the reason.",
            token: Token::Session,
            roles: &["analyst"],
            params: vec![path_param("id", integer(), "Hold id")],
            body: json_body("ReleaseRequest"),
            ok: ("204", "Released", None),
            errors: &["400", "401", "403", "404"],
        },
        Op {
            method: "get",
            path: "/v1/reports/monthly",
            id: "monthlyReport",
            tag: "reports",
            summary: "One month's figures",
            description: "Alerts triggered (an encounter with a match tag or an alert \
                disposition), distinct plates and plates encountered 4+ and 7+ times (by plate \
                text), counts by area (square grid cells of the configured size, default 0.01 \
                degree) and by hour of day. Audited.",
            token: Token::Session,
            roles: &["analyst", "admin", "auditor"],
            params: vec![
                param(
                    "month",
                    "query",
                    true,
                    json!({ "type": "string", "pattern": "^(19|20)[0-9]{2}-(0[1-9]|1[0-2])(?![\\s\\S])" }),
                    "YYYY-MM",
                ),
                param(
                    "utc_offset_minutes",
                    "query",
                    false,
                    json!({ "type": "integer", "minimum": -720, "maximum": 840, "default": 0 }),
                    "Local offset for month edges and hours",
                ),
            ],
            body: None,
            ok: ok_json("200", "The report", "MonthlyReport"),
            errors: &["400", "401", "403"],
        },
        Op {
            method: "get",
            path: "/openapi.json",
            id: "openapi",
            tag: "meta",
            summary: "This document",
            description: "",
            token: Token::Public,
            roles: &[],
            params: vec![],
            body: None,
            ok: (
                "200",
                "The OpenAPI document",
                Some(json_content(json!({ "type": "object" }))),
            ),
            errors: &[],
        },
    ]
}

/// Text without control characters (Unicode category Cc, Rust's `char::is_control`), as the
/// server checks names and labels.
/// (Patterns end with `(?![\\s\\S])`, not `$`: in Python's regular expressions, which
/// schemathesis uses, `$` also matches before a final line feed.)
const NO_CONTROL: &str = "^[^\\u0000-\\u001F\\u007F-\\u009F]*(?![\\s\\S])";

/// The server's password rule (`routes::create_user`) as JSON Schema: 12..=1024 characters,
/// at least 12 of them besides leading and trailing white space (Rust's `str::trim`, Unicode
/// White_Space), and at least 4 different characters (the `not` pattern matches strings of 3 or
/// fewer different characters).
fn password() -> Value {
    json!({
        "type": "string",
        "minLength": 12,
        "maxLength": 1024,
        "pattern": format!("^[{WS}]*[^{WS}][\\s\\S]{{10,}}[^{WS}][{WS}]*(?![\\s\\S])"),
        "not": { "pattern": "^([\\s\\S])\\1*(?:([\\s\\S])(?:\\1|\\2)*(?:([\\s\\S])(?:\\1|\\2|\\3)*)?)?(?![\\s\\S])" },
        "description": "At least 12 characters besides leading and trailing white space, at most 1024, \
                        and at least 4 different characters"
    })
}

/// Characters Rust's `str::trim` removes (Unicode White_Space), for patterns.
const WS: &str =
    "\\u0009-\\u000D\\u0020\\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000";
/// Control characters (Rust's `char::is_control`), for patterns.
const CTRL: &str = "\\u0000-\\u001F\\u007F-\\u009F";

/// Free text the server trims (case number, justification): null, blank, or text without
/// control characters between its leading and trailing white space.
fn label(max: usize) -> Value {
    json!({
        "type": ["string", "null"],
        "pattern": format!("^[{WS}]*(?:{})?[{WS}]*(?![\\s\\S])", trimmed(max))
    })
}

/// A pattern for 1..=`max` characters without control characters that neither start nor end
/// with white space: what the server keeps of a label after trimming it (the limit counts the
/// trimmed text, so it is stated here and not as `maxLength`).
fn trimmed(max: usize) -> String {
    let inner = max.saturating_sub(2);
    format!("[^{WS}{CTRL}](?:[^{CTRL}]{{0,{inner}}}[^{WS}{CTRL}])?")
}

/// Whom a query or session is for: null, blank (nobody), or the username of an existing user
/// (the server trims it).
fn on_behalf_of() -> Value {
    json!({
        "type": ["string", "null"],
        "pattern": format!("^[{WS}]*(?:[A-Za-z0-9._@-]{{3,64}})?[{WS}]*(?![\\s\\S])"),
        "description": "The username of an existing user (400 when there is none)"
    })
}

/// The server requires a case number or a justification (each trimmed, not blank).
fn case_or_justification() -> Value {
    let given = |field: &str, max: usize| {
        json!({
            "required": [field],
            "properties": { field: {
                "type": "string",
                "pattern": format!("^[{WS}]*{}[{WS}]*(?![\\s\\S])", trimmed(max))
            } }
        })
    };
    json!([given("case_number", 64), given("justification", 2000)])
}

/// `schema` (an object) with [`case_or_justification`].
fn with_case_or_justification(mut schema: Value) -> Value {
    schema["anyOf"] = case_or_justification();
    schema
}

fn obj(required: &[&str], props: Value) -> Value {
    json!({ "type": "object", "required": required, "properties": props })
}

/// A request object the server reads with `deny_unknown_fields`: other fields are refused.
fn strict_obj(required: &[&str], props: Value) -> Value {
    json!({ "type": "object", "additionalProperties": false, "required": required, "properties": props })
}

fn nullable(t: &str) -> Value {
    if t == "integer" {
        // The server reads every integer as an i64.
        json!({ "type": [t, "null"], "format": "int64" })
    } else {
        json!({ "type": [t, "null"] })
    }
}

fn array_of(v: Value) -> Value {
    json!({ "type": "array", "items": v })
}

/// `reason_codes`: the codes the server is configured with; requests that name a reason code
/// must use one of them.
fn schemas(reason_codes: &[String]) -> Value {
    let i64s = integer();
    let s = string();
    let reason = json!({
        "type": "string",
        "enum": reason_codes,
        "description": "One of the server's configured reason codes (`GET /v1/reason-codes`)"
    });
    let common_query = json!({
        "from_ms": i64s, "to_ms": i64s,
        "reason_code": reason,
        "case_number": label(64),
        "justification": label(2000),
        "on_behalf_of": on_behalf_of(),
        "confirm": { "type": "boolean", "default": false }
    });
    let with_common = |extra: Value, required: &[&str]| {
        let mut props = common_query.clone();
        if let (Some(p), Some(e)) = (props.as_object_mut(), extra.as_object()) {
            p.extend(e.clone());
        }
        let mut req = vec!["from_ms", "to_ms", "reason_code"];
        req.extend_from_slice(required);
        json!({
            "type": "object", "additionalProperties": false, "required": req, "properties": props,
            "anyOf": case_or_justification()
        })
    };
    let ring = array_of(
        json!({ "type": "array", "items": { "type": "number" }, "minItems": 2, "maxItems": 2, "description": "[lat, lon]" }),
    );
    let polygon = json!({ "type": "array", "items": ring, "description": "Rings of [lat, lon]: the boundary, then holes" });
    let mut all = Map::new();
    let mut add = |part: Value| {
        if let Value::Object(m) = part {
            all.extend(m);
        }
    };
    add(json!({
        "RenewedToken": obj(&["id", "token", "expires_at_ms"], json!({
            "id": i64s, "token": s, "expires_at_ms": i64s
        })),
        "PatchUser": strict_obj(&[], json!({ "disabled": { "type": "boolean" } })),
        "UserState": obj(&["id", "username", "role", "enhanced_queries", "disabled"], json!({
            "id": i64s, "username": s, "role": schema_ref("Role"),
            "enhanced_queries": { "type": "boolean" }, "disabled": { "type": "boolean" }
        })),
        "SessionsRevoked": obj(&["revoked"], json!({ "revoked": i64s })),
    }));
    add(json!({
        "Error": obj(&["error"], json!({
            "error": { "type": "string", "description": "Why (never quotes plate text)" },
            "code": { "type": "string", "description": "`rules_not_acknowledged` when the rules must be acknowledged" },
            "rules_version": i64s,
            "rules_text": s
        })),
        "LoginRequest": obj(&["username", "password"], json!({
            "username": s, "password": s, "acknowledge_rules_version": nullable("integer")
        })),
        "LoginResponse": obj(&["token", "expires_at_ms", "role", "enhanced_queries"], json!({
            "token": s, "expires_at_ms": i64s, "role": schema_ref("Role"),
            "enhanced_queries": { "type": "boolean" }, "rules_version": nullable("integer")
        })),
        "Role": { "type": "string", "enum": ["officer", "analyst", "admin", "auditor"] },
        "RegisterDevice": strict_obj(&["name"], json!({
            "name": { "type": "string", "minLength": 1, "maxLength": 100, "pattern": NO_CONTROL }
        })),
        "DeviceToken": obj(&["id", "name", "token", "expires_at_ms"], json!({
            "id": i64s, "name": s, "token": s, "expires_at_ms": i64s
        })),
        "Rules": obj(&["version", "text"], json!({ "version": i64s, "text": s })),
        "SetRules": obj(&["text"], json!({ "text": s })),
        "CreateUser": obj(&["username", "password", "role"], json!({
            "username": { "type": "string", "pattern": "^[A-Za-z0-9._@-]{3,64}(?![\\s\\S])" },
            "password": password(), "role": schema_ref("Role"),
            "enhanced_queries": { "type": "boolean", "default": false }
        })),
        "UserCreated": obj(&["id", "username", "role", "enhanced_queries"], json!({
            "id": i64s, "username": s, "role": schema_ref("Role"), "enhanced_queries": { "type": "boolean" }
        })),
        "EncounterBatch": obj(&["encounters"], json!({
            // Each row is checked on its own: a row that is not an EncounterUpload is rejected
            // in the per-row results with its reason and the others are stored, so the batch
            // accepts any row (the `anyOf` names the shape a row must have to be stored).
            "encounters": {
                "type": "array",
                "items": { "anyOf": [schema_ref("EncounterUpload"), {}] },
                "minItems": 1,
                "maxItems": 500,
                "description": "Rows that are not an EncounterUpload are rejected one by one in `results`"
            }
        })),
        "EncounterUpload": obj(
            &["id", "plate", "confidence", "crop", "lat", "lon", "captured_at_ms", "camera_id", "reason_code", "session_id"],
            json!({
                "id": { "type": "string", "format": "uuid" },
                "plate": { "type": "string", "pattern": "^[A-Z0-9]{1,15}(?![\\s\\S])" },
                "state": nullable("string"),
                "confidence": { "type": "number", "minimum": 0, "maximum": 1 },
                "crop": { "type": "string", "contentEncoding": "base64", "description": "At most 256 KiB decoded" },
                "context_image": { "type": ["string", "null"], "contentEncoding": "base64", "description": "At most 2 MiB decoded" },
                "lat": { "type": "number", "minimum": -90, "maximum": 90 },
                "lon": { "type": "number", "minimum": -180, "maximum": 180 },
                "captured_at_ms": i64s,
                "device_id": nullable("integer"),
                "camera_id": s,
                "user": nullable("string"),
                "on_behalf_of": nullable("string"),
                "reason_code": s,
                "case_number": nullable("string"),
                "justification": nullable("string"),
                "session_id": { "type": "string", "format": "uuid" },
                "match_tags": array_of(s.clone()),
                "alert": { "oneOf": [{ "type": "null" }, obj(&["decision"], json!({
                    "decision": { "type": "string", "enum": ["accepted", "rejected"] },
                    "reason": nullable("string")
                }))] }
            })
        ),
        "EncounterUploadResponse": obj(&["stored", "duplicates", "rejected", "results"], json!({
            "stored": i64s, "duplicates": i64s, "rejected": i64s,
            "results": array_of(obj(&["index", "status"], json!({
                "index": i64s, "id": nullable("string"),
                "status": { "type": "string", "enum": ["stored", "duplicate", "rejected"] },
                "reason": s
            })))
        }))
    }));
    add(json!({
        "ReasonCodes": obj(&["reason_codes"], json!({ "reason_codes": array_of(s.clone()) }))
    }));
    add(json!({
        "StartSession": with_case_or_justification(strict_obj(&["reason_code"], json!({
            "id": { "type": ["string", "null"], "format": "uuid" },
            "reason_code": reason, "case_number": label(64),
            "justification": label(2000), "on_behalf_of": on_behalf_of()
        }))),
        "ScanSession": obj(&["id", "user_id", "reason_code", "started_at_ms"], json!({
            "id": s, "user_id": i64s, "device_id": nullable("integer"),
            "on_behalf_of_user_id": nullable("integer"), "reason_code": s,
            "case_number": nullable("string"), "justification": nullable("string"),
            "started_at_ms": i64s, "ended_at_ms": nullable("integer")
        })),
        "PlateQuery": with_common(json!({
            "plate": {
                "type": "string",
                "pattern": format!("^[{WS}]*[A-Za-z0-9]{{1,15}}[{WS}]*(?![\\s\\S])"),
                "description": "1 to 15 letters and digits (case does not matter)"
            },
            "state": nullable("string")
        }), &["plate"]),
        "PartialQuery": with_common(json!({ "pattern": { "type": "string", "description": "`*` any run, `?` one character" }, "state": nullable("string") }), &["pattern"]),
        "PolygonQuery": with_common(json!({ "polygons": array_of(polygon.clone()) }), &["polygons"]),
        "CommonPlateQuery": with_common(json!({ "polygons": array_of(polygon), "min_areas": nullable("integer") }), &["polygons"]),
        "QueryResponse": obj(&["audit_seq", "kind", "count", "returned", "confirm_required", "truncated", "rows"], json!({
            "audit_seq": i64s, "kind": s, "count": i64s, "returned": i64s,
            "confirm_required": { "type": "boolean" }, "truncated": { "type": "boolean" },
            "warning": s,
            "flags": obj(&["area_km2", "large_area", "sensitive_locations"], json!({
                "area_km2": { "type": "number" }, "large_area": { "type": "boolean" },
                "sensitive_locations": array_of(s.clone())
            })),
            "rows": array_of(schema_ref("EncounterHit"))
        })),
        "EncounterHit": obj(&["id", "plate", "confidence", "lat", "lon", "captured_at_ms", "device_id", "camera_id", "user", "reason_code", "session_id", "match_tags"], json!({
            "id": s, "plate": s, "state": nullable("string"), "confidence": { "type": "number" },
            "lat": { "type": "number" }, "lon": { "type": "number" }, "captured_at_ms": i64s,
            "device_id": i64s, "camera_id": s, "user": s, "on_behalf_of": nullable("string"),
            "reason_code": s, "case_number": nullable("string"), "session_id": s,
            "match_tags": array_of(s.clone()), "alert_decision": nullable("string"),
            "alert_reason": nullable("string"),
            "areas": { "type": "array", "items": { "type": "integer" }, "description": "Common-plate queries: the polygons (by index) the encounter is in" }
        }))
    }));
    add(json!({
        "ChainReport": obj(&["intact", "rows"], json!({
            "intact": { "type": "boolean" }, "rows": i64s,
            "broken_at_seq": nullable("integer"), "problem": nullable("string")
        })),
        "AuditRow": obj(&["seq", "at_ms", "action", "outcome", "criteria", "prev_hash", "hash"], json!({
            "seq": i64s, "at_ms": i64s, "user_id": nullable("integer"), "username": nullable("string"),
            "on_behalf_of": nullable("string"), "action": s, "outcome": s,
            "reason": nullable("string"), "justification": nullable("string"),
            "criteria": { "type": "string", "description": "Canonical JSON (keys sorted), as hashed" },
            "result_count": nullable("integer"), "client": nullable("string"),
            "prev_hash": s,
            "hash": { "type": "string", "description": "HMAC-SHA256(the server's audit key, prev_hash || canonical JSON of the row), hex; sha256 of the same for rows before the checkpoint's keyed_from" }
        })),
        "AuditExport": obj(&["from_ms", "to_ms", "count", "rows", "checkpoint"], json!({
            "from_ms": i64s, "to_ms": i64s, "count": i64s, "rows": array_of(schema_ref("AuditRow")),
            "checkpoint": { "oneOf": [schema_ref("Checkpoint"), { "type": "null" }], "description": "Signed after the export was audited; null when the chain is broken" }
        })),
        "Checkpoint": obj(&["seq", "hash", "keyed_from", "at_ms", "key_id", "signature"], json!({
            "seq": i64s, "hash": { "type": "string", "description": "Row seq's hash (the genesis zeros for seq 0), 64 lower-case hex digits" },
            "keyed_from": { "type": "integer", "format": "int64", "description": "First row of the keyed chain" },
            "at_ms": i64s, "key_id": s,
            "signature": { "type": "string", "contentEncoding": "base64", "description": "ed25519, 64 bytes" }
        })),
        "CheckpointList": obj(&["key", "checkpoints"], json!({
            "key": schema_ref("PublicKeyInfo"), "checkpoints": array_of(schema_ref("Checkpoint"))
        }))
    }));
    add(json!({
        "Category": { "type": "string", "enum": ["stolen_vehicle", "stolen_plate", "wanted", "felony", "missing", "amber", "protection_order", "sex_offender", "gang", "supervised_release", "custom"] },
        "Source": { "type": "string", "enum": ["ncic", "state", "agency", "officer"] },
        "Entry": obj(&["plate", "category", "priority", "source"], json!({
            "plate": { "type": "string", "description": "Normalised plate or pattern (`*`, `?`)" },
            "state": s, "category": schema_ref("Category"),
            "priority": { "type": "integer", "minimum": 0, "maximum": 100 },
            "source": schema_ref("Source"),
            "vehicle": { "type": "object", "properties": { "make": s, "model": s, "colour": s, "year": { "type": "integer" } } },
            "incident_date": { "type": "string", "format": "date" },
            "expires_at": { "type": "integer", "description": "Unix seconds from which the entry no longer matches" },
            "note": s
        })),
        "EntryKey": obj(&["plate", "category"], json!({ "plate": s, "state": s, "category": schema_ref("Category") })),
        "ListInfo": obj(&["name", "source", "version", "published_at", "max_age_secs"], json!({
            "name": s, "source": schema_ref("Source"), "version": i64s,
            "published_at": { "type": "integer", "description": "Unix seconds" }, "max_age_secs": i64s
        })),
        "HotlistPayload": {
            "description": "The signed content: `payload` of a SignedHotlist, as JSON text.",
            "type": "object",
            "required": ["list", "issued_at", "update"],
            "properties": {
                "list": schema_ref("ListInfo"),
                "issued_at": { "type": "integer", "description": "Unix seconds" },
                "update": { "oneOf": [
                    obj(&["kind", "entries"], json!({ "kind": { "const": "snapshot" }, "entries": array_of(schema_ref("Entry")) })),
                    obj(&["kind", "base_version", "add", "remove"], json!({
                        "kind": { "const": "delta" }, "base_version": i64s,
                        "add": array_of(schema_ref("Entry")), "remove": array_of(schema_ref("EntryKey"))
                    }))
                ] }
            }
        },
        "SignedHotlist": obj(&["alg", "key_id", "payload", "signature"], json!({
            "alg": { "const": "ed25519" },
            "key_id": { "type": "string", "description": "First 8 bytes of SHA-256 of the public key, hex" },
            "payload": { "type": "string", "contentMediaType": "application/json", "contentSchema": schema_ref("HotlistPayload") },
            "signature": { "type": "string", "contentEncoding": "base64", "description": "ed25519 over `platewatch-hotlist-v1\\n` followed by the payload's UTF-8 bytes" }
        })),
        "PublicKeyInfo": obj(&["alg", "key_id", "public_key"], json!({
            "alg": { "const": "ed25519" }, "key_id": s,
            "public_key": { "type": "string", "contentEncoding": "base64", "description": "32 bytes" }
        }))
    }));
    add(json!({
        "HotlistIndex": obj(&["lists"], json!({
            "lists": array_of(json!({ "allOf": [schema_ref("ListInfo"), obj(&["entries"], json!({ "entries": i64s }))] }))
        })),
        "PublishOutcome": obj(&["list", "previous_version", "version", "changed", "added", "updated", "removed", "entries"], json!({
            "list": s, "previous_version": i64s, "version": i64s, "changed": { "type": "boolean" },
            "added": i64s, "updated": i64s, "removed": i64s, "entries": i64s
        })),
        "HotlistUploadResponse": { "allOf": [schema_ref("PublishOutcome"), obj(&["format", "records", "imported", "rejects", "warnings"], json!({
            "format": s, "records": i64s, "imported": i64s,
            "rejects": array_of(obj(&["line", "reason"], json!({ "line": i64s, "reason": s }))),
            "warnings": array_of(s.clone())
        }))] },
        "HoldRequest": obj(&["case_number", "justification"], json!({ "case_number": s, "justification": s })),
        "ReleaseRequest": obj(&["reason"], json!({ "reason": s })),
        "CaseHold": obj(&["id", "case_number", "justification", "created_by", "created_at_ms"], json!({
            "id": i64s, "case_number": s, "justification": s, "created_by": s, "created_at_ms": i64s,
            "released_by": s, "released_at_ms": i64s, "release_reason": s
        })),
        "CaseHoldList": obj(&["holds"], json!({ "holds": array_of(schema_ref("CaseHold")) })),
        "MonthlyReport": obj(
            &["month", "utc_offset_minutes", "from_ms", "to_ms", "encounters", "distinct_plates", "alerts_triggered", "alerts_accepted", "alerts_rejected", "plates_seen_4_plus", "plates_seen_7_plus", "by_hour", "by_area", "areas_truncated"],
            json!({
                "month": s, "utc_offset_minutes": { "type": "integer" }, "from_ms": i64s, "to_ms": i64s,
                "encounters": i64s, "distinct_plates": i64s, "alerts_triggered": i64s,
                "alerts_accepted": i64s, "alerts_rejected": i64s,
                "plates_seen_4_plus": i64s, "plates_seen_7_plus": i64s,
                "by_hour": { "type": "array", "items": { "type": "integer" }, "minItems": 24, "maxItems": 24 },
                "by_area": array_of(obj(&["lat_index", "lon_index", "south", "west", "size_deg", "encounters"], json!({
                    "lat_index": i64s, "lon_index": i64s, "south": { "type": "number" },
                    "west": { "type": "number" }, "size_deg": { "type": "number" }, "encounters": i64s
                }))),
                "areas_truncated": { "type": "boolean" }
            })
        )
    }));
    Value::Object(all)
}

fn error_response(code: &str) -> Value {
    let desc = match code {
        "400" => "Malformed or invalid input (the reason names the field, never a plate)",
        "401" => "No, an unknown, an expired or a revoked token",
        "403" => {
            "The role, permission or token kind does not allow this, or the rules of behaviour must be acknowledged"
        }
        "404" => "Not found",
        "409" => "Conflicts with the current state",
        "413" => "Request body too large",
        "429" => "Too many failed attempts: try again after `Retry-After` seconds",
        _ => "Error",
    };
    json!({ "description": desc, "content": json_content(schema_ref("Error")) })
}

/// The document with the default reason codes (the committed one).
pub fn document() -> Value {
    document_for(&default_reason_codes())
}

/// The document for a server configured with `reason_codes`.
pub fn document_for(reason_codes: &[String]) -> Value {
    let mut paths = Map::new();
    for op in operations() {
        let mut o = Map::new();
        o.insert("operationId".into(), json!(op.id));
        o.insert("tags".into(), json!([op.tag]));
        o.insert("summary".into(), json!(op.summary));
        let who = match op.token {
            Token::Public => "No authentication.".to_string(),
            t => format!(
                "{} token; roles: {}.",
                match t {
                    Token::Session => "Session",
                    Token::Device => "Device",
                    _ => "Session or device",
                },
                op.roles.join(", ")
            ),
        };
        let description = if op.description.is_empty() {
            who
        } else {
            format!("{} {who}", op.description)
        };
        o.insert("description".into(), json!(description));
        if op.token != Token::Public {
            o.insert("security".into(), json!([{ "bearer": [] }]));
            o.insert("x-platewatch-roles".into(), json!(op.roles));
            o.insert(
                "x-platewatch-token".into(),
                json!(match op.token {
                    Token::Session => "session",
                    Token::Device => "device",
                    _ => "any",
                }),
            );
        } else {
            o.insert("security".into(), json!([]));
        }
        if !op.params.is_empty() {
            o.insert("parameters".into(), Value::Array(op.params));
        }
        if let Some(b) = op.body {
            o.insert("requestBody".into(), b);
        }
        let mut responses = Map::new();
        let (code, desc, content) = op.ok;
        let mut ok = json!({ "description": desc });
        if let (Some(c), Some(m)) = (content, ok.as_object_mut()) {
            m.insert("content".into(), c);
        }
        responses.insert(code.into(), ok);
        for e in op.errors {
            responses.insert((*e).into(), error_response(e));
        }
        if op.id == "startSession" {
            responses.insert(
                "200".into(),
                json!({
                    "description": "The same user registered this session before: the stored session",
                    "content": json_content(schema_ref("ScanSession"))
                }),
            );
        }
        o.insert("responses".into(), Value::Object(responses));
        let entry = paths
            .entry(op.path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(m) = entry.as_object_mut() {
            m.insert(op.method.into(), Value::Object(o));
        }
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Platewatch server",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Encounter ingest, hot list publishing, audited queries, retention, \
                reports and the audit log. Every endpoint but login and this document takes \
                `Authorization: Bearer TOKEN` (a session token `pws_…` or a device token \
                `pwd_…`). Errors are JSON `{\"error\": reason}` with a 4xx status."
        },
        "servers": [{ "url": "/" }],
        "security": [{ "bearer": [] }],
        "tags": [
            { "name": "identity" }, { "name": "encounters" }, { "name": "queries" },
            { "name": "hotlists" }, { "name": "audit" }, { "name": "retention" },
            { "name": "reports" }, { "name": "meta" }
        ],
        "paths": Value::Object(paths),
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": schemas(reason_codes)
        }
    })
}

/// `document` as text: pretty JSON with a final newline.
fn text_of(reason_codes: &[String]) -> String {
    let mut s =
        serde_json::to_string_pretty(&document_for(reason_codes)).unwrap_or_else(|_| "{}".into());
    s.push('\n');
    s
}

/// The document as committed (the default reason codes).
pub fn document_text() -> &'static str {
    static TEXT: OnceLock<String> = OnceLock::new();
    TEXT.get_or_init(|| text_of(&default_reason_codes()))
}

fn default_reason_codes() -> Vec<String> {
    crate::config::DEFAULT_REASON_CODES
        .iter()
        .map(|c| c.to_string())
        .collect()
}

/// `GET /openapi.json` (public): the document with this server's reason codes.
pub async fn serve_document(State(state): State<AppState>) -> Response {
    let body = if state.config.reason_codes == default_reason_codes() {
        document_text().to_string()
    } else {
        text_of(&state.config.reason_codes)
    };
    ([(CONTENT_TYPE, "application/json")], body).into_response()
}

/// `(method, path)` of every documented operation, methods upper-case.
pub fn documented_routes() -> Vec<(String, String)> {
    operations()
        .iter()
        .map(|o| (o.method.to_ascii_uppercase(), o.path.to_string()))
        .collect()
}
