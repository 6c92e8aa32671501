//! The JWT side of the local API Gateway: a token issuer, and the authorizer the template
//! declares on an HTTP API, enforced as API Gateway enforces it.
//!
//! [`LocalIssuer`] stands in for the identity provider: an RSA key generated at start, its JWKS
//! and OpenID discovery document served over HTTP under `/_local`, and `POST /_local/token`
//! (`{"sub": "c1", "groups": ["admin"]}`) for a token. The host runs the template with
//! `IdentityIssuerUrl` pointing at it, as a deployed stack would with an issuer of its own.
//!
//! [`JwtAuthorizer`] does what API Gateway's JWT authorizer does before a route runs
//! (<https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-jwt-authorizer.html>):
//! the token comes from the `Authorization` header, alone or after `Bearer`; its key is found by
//! `kid` in the `jwks_uri` of the issuer's `/.well-known/openid-configuration`; only RSA
//! algorithms are accepted; `iss` must be the issuer; `aud`, or `client_id` when there is no
//! `aud`, one of the audiences; `exp` after now, `nbf` and `iat` before. Any failure is a 401
//! `{"message":"Unauthorized"}` with a `www-authenticate` header naming the reason
//! (<https://docs.aws.amazon.com/apigateway/latest/developerguide/http-api-troubleshooting-jwt.html>).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use jsonwebtoken::jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use serde_norway::Value as Yaml;
use tokio::sync::RwLock;

use crate::resolve::Resolver;
use crate::{Error, setup};

/// Where the local issuer lives on the host's port.
pub const ISSUER_PATH: &str = "/_local";
/// The audience of the local issuer's tokens (`IdentityAudience` locally).
pub const LOCAL_AUDIENCE: &str = "shop-local";
/// How long a token lives unless asked otherwise: Cognito's default for access tokens.
const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// The local identity provider.
pub struct LocalIssuer {
    issuer: String,
    audience: String,
    groups_claim: String,
    kid: String,
    key: EncodingKey,
    jwks: JwkSet,
}

/// `POST /_local/token`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenRequest {
    pub sub: String,
    #[serde(default)]
    pub groups: Vec<String>,
    /// Seconds the token is valid for (1 to 86400; 3600 when not sent).
    #[serde(default)]
    pub expires_in: Option<u64>,
}

fn now_secs() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

impl LocalIssuer {
    /// A new RSA-2048 key for `issuer` (a URL) whose tokens are for `audience`, with the
    /// caller's groups in `groups_claim`.
    pub fn generate(issuer: String, audience: String, groups_claim: String) -> Result<Self, Error> {
        let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
            .map_err(|e| Error::Setup(format!("generating the local issuer's key: {e}")))?;
        let pkcs8 = pair.as_der().map_err(|e| Error::Setup(format!("encoding the local issuer's key: {e}")))?;
        let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", pkcs8.as_ref().to_vec()));
        let key = EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(setup("the local issuer's key"))?;
        let kid = format!("local-{}", uuid::Uuid::new_v4().simple());
        let mut jwk = Jwk::from_encoding_key(&key, Algorithm::RS256).map_err(setup("the local issuer's JWK"))?;
        jwk.common.key_id = Some(kid.clone());
        jwk.common.public_key_use = Some(PublicKeyUse::Signature);
        jwk.common.key_algorithm = Some(KeyAlgorithm::RS256);
        Ok(Self { issuer, audience, groups_claim, kid, key, jwks: JwkSet { keys: vec![jwk] } })
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// Signs any claims with the issuer's key (RS256, its `kid`): for tests that need a token
    /// the token endpoint would not give (expired, another audience).
    pub fn sign(&self, claims: &Value) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).expect("the issuer's own key signs")
    }

    /// The claims of a token for `request`: what a Cognito ID token carries that the shop reads.
    pub fn claims(&self, request: &TokenRequest) -> Result<Value, String> {
        if request.sub.trim().is_empty() {
            return Err("`sub` must not be blank".into());
        }
        let lifetime = request.expires_in.unwrap_or(DEFAULT_LIFETIME.as_secs());
        if !(1..=86_400).contains(&lifetime) {
            return Err("`expires_in` must be 1 to 86400 seconds".into());
        }
        let now = now_secs();
        let mut claims = json!({
            "iss": self.issuer, "sub": request.sub, "aud": self.audience, "token_use": "id",
            "iat": now, "auth_time": now, "exp": now + lifetime as i64, "jti": uuid::Uuid::new_v4().to_string(),
        });
        // As Cognito, no groups claim at all for a user in no group.
        if !request.groups.is_empty() {
            claims[&self.groups_claim] = json!(request.groups);
        }
        Ok(claims)
    }

    /// `{"access_token", "id_token", "token_type", "expires_in"}` for `request`.
    pub fn token(&self, request: &TokenRequest) -> Result<Value, String> {
        let claims = self.claims(request)?;
        let token = self.sign(&claims);
        let expires_in = claims["exp"].as_i64().unwrap_or_default() - claims["iat"].as_i64().unwrap_or_default();
        Ok(json!({"access_token": token, "id_token": token, "token_type": "Bearer", "expires_in": expires_in}))
    }

    pub fn jwks(&self) -> &JwkSet {
        &self.jwks
    }

    /// The OpenID discovery document (the part API Gateway reads: `issuer` and `jwks_uri`).
    pub fn openid_configuration(&self) -> Value {
        json!({
            "issuer": self.issuer,
            "jwks_uri": format!("{}/.well-known/jwks.json", self.issuer),
            "token_endpoint": format!("{}/token", self.issuer),
            "id_token_signing_alg_values_supported": ["RS256"],
            "subject_types_supported": ["public"],
            "response_types_supported": ["token"],
        })
    }
}

/// Why a token was refused: the `error_description` of the 401's `www-authenticate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unauthorized(pub String);

impl Unauthorized {
    /// API Gateway's answer: 401 `{"message":"Unauthorized"}`, the reason in `www-authenticate`.
    pub fn response(&self) -> axum::response::Response {
        use axum::response::IntoResponse;
        let challenge = format!("Bearer scope=\"\" error=\"invalid_token\" error_description=\"{}\"", self.0);
        let mut response = (StatusCode::UNAUTHORIZED, r#"{"message":"Unauthorized"}"#).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}

fn refuse<T>(reason: impl Into<String>) -> Result<T, Unauthorized> {
    Err(Unauthorized(reason.into()))
}

/// A JWT authorizer of the template: its issuer and audiences, and the issuer's keys once
/// fetched.
pub struct JwtAuthorizer {
    pub issuer: String,
    pub audiences: Vec<String>,
    http: reqwest::Client,
    keys: RwLock<Option<JwkSet>>,
}

impl std::fmt::Debug for JwtAuthorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtAuthorizer").field("issuer", &self.issuer).field("audiences", &self.audiences).finish()
    }
}

impl JwtAuthorizer {
    pub fn new(issuer: String, audiences: Vec<String>) -> Self {
        Self { issuer, audiences, http: reqwest::Client::new(), keys: RwLock::new(None) }
    }

    /// The issuer's keys through its discovery document, as API Gateway finds them.
    async fn fetch_keys(&self) -> Result<JwkSet, String> {
        let discovery = format!("{}/.well-known/openid-configuration", self.issuer.trim_end_matches('/'));
        let get = |url: String| async move {
            let response = self.http.get(&url).send().await.map_err(|e| format!("{url}: {e}"))?;
            if !response.status().is_success() {
                return Err(format!("{url}: {}", response.status()));
            }
            response.json::<Value>().await.map_err(|e| format!("{url}: {e}"))
        };
        let configuration = get(discovery).await?;
        let jwks_uri = configuration["jwks_uri"].as_str().ok_or("no jwks_uri in the discovery document")?.to_owned();
        serde_json::from_value(get(jwks_uri).await?).map_err(|e| format!("not a JWKS: {e}"))
    }

    /// The key with this `kid`; the keys are fetched again once when it is not among them (a
    /// rotated key).
    async fn key(&self, kid: &str) -> Result<Option<Jwk>, String> {
        if let Some(keys) = self.keys.read().await.as_ref()
            && let Some(key) = keys.find(kid)
        {
            return Ok(Some(key.clone()));
        }
        let keys = self.fetch_keys().await?;
        let key = keys.find(kid).cloned();
        *self.keys.write().await = Some(keys);
        Ok(key)
    }

    /// The token's claims, or why API Gateway would refuse it.
    pub async fn authorize(&self, headers: &HeaderMap) -> Result<Map<String, Value>, Unauthorized> {
        let Some(raw) = headers.get(header::AUTHORIZATION) else { return refuse("the token is missing") };
        let raw = raw.to_str().map_err(|_| Unauthorized("the token is malformed".into()))?.trim();
        let token = match raw.split_once(' ') {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
            Some(_) => return refuse("the token is malformed"),
            None => raw,
        };
        let Ok(head) = jsonwebtoken::decode_header(token) else { return refuse("the token is malformed") };
        let rsa = [
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ];
        if !rsa.contains(&head.alg) {
            return refuse(format!("signing method {:?} is invalid", head.alg));
        }
        let Some(kid) = head.kid else { return refuse("the token has no kid") };
        let key = match self.key(&kid).await {
            Ok(Some(key)) => key,
            Ok(None) => return refuse("the token's kid is not a key of the issuer"),
            Err(e) => {
                tracing::warn!(issuer = self.issuer, error = e, "the issuer's keys could not be fetched");
                return refuse("the issuer's keys could not be fetched");
            }
        };
        let Ok(key) = DecodingKey::from_jwk(&key) else { return refuse("the issuer's key is not usable") };
        let mut validation = Validation::new(head.alg);
        validation.leeway = 0;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "iss"]);
        let claims = match jsonwebtoken::decode::<Map<String, Value>>(token, &key, &validation) {
            Ok(data) => data.claims,
            Err(e) => {
                use jsonwebtoken::errors::ErrorKind;
                return refuse(match e.kind() {
                    ErrorKind::ExpiredSignature => "the token has expired",
                    ErrorKind::ImmatureSignature => "the token is not valid yet",
                    ErrorKind::InvalidIssuer => "the token does not have a valid issuer",
                    ErrorKind::InvalidSignature => "the token's signature is invalid",
                    ErrorKind::MissingRequiredClaim(_) => "the token lacks a required claim",
                    _ => "the token is malformed",
                });
            }
        };
        if claims.get("iat").and_then(Value::as_i64).is_some_and(|iat| iat > now_secs()) {
            return refuse("the token was issued in the future");
        }
        // `aud` when present (a string or an array), else `client_id` (Cognito's access tokens).
        let audiences: Vec<&str> = match claims.get("aud").or_else(|| claims.get("client_id")) {
            Some(Value::String(aud)) => vec![aud.as_str()],
            Some(Value::Array(auds)) => auds.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !audiences.iter().any(|aud| self.audiences.iter().any(|a| a == aud)) {
            return refuse("the token does not have a valid audience");
        }
        Ok(claims)
    }
}

/// What a route requires before its function runs.
#[derive(Debug, Clone, Default)]
pub enum RouteAuth {
    #[default]
    None,
    /// SigV4 (`AWS_IAM`), see [`crate::sigv4`].
    Iam,
    Jwt(std::sync::Arc<JwtAuthorizer>),
}

/// The authorizers of the template's HTTP APIs, read once.
#[derive(Debug, Default)]
pub struct Authorizers {
    /// API logical id to its `DefaultAuthorizer`.
    defaults: BTreeMap<String, String>,
    /// (API logical id, authorizer name) to the authorizer.
    jwt: BTreeMap<(String, String), std::sync::Arc<JwtAuthorizer>>,
}

impl Authorizers {
    /// Every `Auth` of every `AWS::Serverless::HttpApi`, with the template's conditions
    /// evaluated against the resolver's parameters.
    pub fn read(template: &local_aws::Template, resolver: &Resolver) -> Result<Self, Error> {
        let mut found = Self::default();
        for (api, resource) in template.resources_of_type("AWS::Serverless::HttpApi") {
            let Some(auth) = resource.properties.get("Auth") else { continue };
            if let Some(default) = auth.get("DefaultAuthorizer").and_then(Yaml::as_str) {
                found.defaults.insert(api.to_owned(), default.to_owned());
            }
            let Some(Yaml::Mapping(authorizers)) = auth.get("Authorizers") else { continue };
            for (name, authorizer) in authorizers {
                let name = name.as_str().unwrap_or_default().to_owned();
                let context = |e: Error| Error::Setup(format!("{api}.Auth.Authorizers.{name}: {e}"));
                let Some(jwt) = authorizer.get("JwtConfiguration") else {
                    return Err(context(Error::Setup("the local host runs JWT authorizers only".into())));
                };
                let source = authorizer.get("IdentitySource").and_then(Yaml::as_str);
                if source.is_some_and(|s| s != "$request.header.Authorization") {
                    return Err(context(Error::Setup(
                        "the local host reads tokens from $request.header.Authorization only".into(),
                    )));
                }
                let value = |key: &str| {
                    jwt.get(key).ok_or_else(|| context(Error::Setup(format!("JwtConfiguration has no {key}"))))
                };
                let issuer = resolve(value("issuer")?, template, resolver).map_err(context)?;
                let audiences = match value("audience")? {
                    Yaml::Sequence(items) => items
                        .iter()
                        .map(|item| resolve(item, template, resolver))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(context)?,
                    other => vec![resolve(other, template, resolver).map_err(context)?],
                };
                found.jwt.insert((api.to_owned(), name), std::sync::Arc::new(JwtAuthorizer::new(issuer, audiences)));
            }
        }
        Ok(found)
    }

    /// What a route of `api` with this event `Auth.Authorizer` requires.
    pub fn route(&self, api: Option<&str>, authorizer: Option<&str>) -> Result<RouteAuth, Error> {
        let name = authorizer.or_else(|| api.and_then(|api| self.defaults.get(api)).map(String::as_str));
        Ok(match name {
            None | Some("NONE") => RouteAuth::None,
            Some("AWS_IAM") => RouteAuth::Iam,
            Some(name) => {
                let key = (api.unwrap_or_default().to_owned(), name.to_owned());
                RouteAuth::Jwt(
                    self.jwt
                        .get(&key)
                        .cloned()
                        .ok_or_else(|| Error::Setup(format!("{}: no authorizer named {name}", key.0)))?,
                )
            }
        })
    }
}

/// A template value with `!If` and conditions (`!Equals`, `!Not`, `!And`, `!Or`, `!Condition`)
/// evaluated, then resolved like any other.
pub fn resolve(value: &Yaml, template: &local_aws::Template, resolver: &Resolver) -> Result<String, Error> {
    if let Yaml::Tagged(tagged) = value
        && tagged.tag == "If"
    {
        let Yaml::Sequence(parts) = &tagged.value else { return Err(Error::Setup("!If takes a list".into())) };
        let [condition, then, otherwise] = parts.as_slice() else {
            return Err(Error::Setup("!If takes a condition and two values".into()));
        };
        let name = condition.as_str().ok_or_else(|| Error::Setup("!If names a condition".into()))?;
        let branch = if condition_holds(name, template, resolver)? { then } else { otherwise };
        return resolve(branch, template, resolver);
    }
    resolver.resolve(value)
}

/// Whether the template's condition `name` holds with the resolver's parameters.
pub fn condition_holds(name: &str, template: &local_aws::Template, resolver: &Resolver) -> Result<bool, Error> {
    let condition =
        template.conditions.get(name).ok_or_else(|| Error::Setup(format!("no condition `{name}` in the template")))?;
    evaluate(condition, template, resolver)
}

fn evaluate(value: &Yaml, template: &local_aws::Template, resolver: &Resolver) -> Result<bool, Error> {
    let Yaml::Tagged(tagged) = value else { return Err(Error::Setup(format!("not a condition: {value:?}"))) };
    let items = match &tagged.value {
        Yaml::Sequence(items) => items.as_slice(),
        other => std::slice::from_ref(other),
    };
    let tag = tagged.tag.to_string();
    match (tag.trim_start_matches('!'), items) {
        ("Equals", [a, b]) => Ok(resolve(a, template, resolver)? == resolve(b, template, resolver)?),
        ("Not", [inner]) => Ok(!evaluate(inner, template, resolver)?),
        ("And", all) => all.iter().try_fold(true, |acc, c| Ok(acc && evaluate(c, template, resolver)?)),
        ("Or", any) => any.iter().try_fold(false, |acc, c| Ok(acc || evaluate(c, template, resolver)?)),
        ("Condition", [Yaml::String(name)]) => condition_holds(name, template, resolver),
        (other, _) => Err(Error::Setup(format!("the local host cannot evaluate the condition function {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(conditions: &str) -> local_aws::Template {
        local_aws::Template::parse(&format!(
            "Parameters:\n  Issuer:\n    Type: String\n    Default: \"\"\nConditions:\n{conditions}\nResources: {{}}\n"
        ))
        .unwrap()
    }

    #[test]
    fn conditions_and_if_follow_the_parameters() {
        let template = template("  Own: !Equals [!Ref Issuer, \"\"]\n  Theirs: !Not [!Condition Own]");
        let pick: Yaml = serde_norway::from_str("!If [Own, cognito, !Ref Issuer]").unwrap();
        let mut resolver = Resolver::default();
        resolver.parameters.insert("Issuer".into(), String::new());
        assert!(condition_holds("Own", &template, &resolver).unwrap());
        assert!(!condition_holds("Theirs", &template, &resolver).unwrap());
        assert_eq!(resolve(&pick, &template, &resolver).unwrap(), "cognito");
        resolver.parameters.insert("Issuer".into(), "https://idp.example".into());
        assert!(condition_holds("Theirs", &template, &resolver).unwrap());
        assert_eq!(resolve(&pick, &template, &resolver).unwrap(), "https://idp.example");
        assert!(condition_holds("Nope", &template, &resolver).is_err());
    }

    #[test]
    fn the_issuers_claims_are_what_the_shop_reads() {
        let issuer =
            LocalIssuer::generate("http://x/_local".into(), LOCAL_AUDIENCE.into(), "cognito:groups".into()).unwrap();
        let request = TokenRequest { sub: "c1".into(), groups: vec!["admin".into()], expires_in: Some(60) };
        let claims = issuer.claims(&request).unwrap();
        assert_eq!((claims["sub"].as_str(), claims["aud"].as_str()), (Some("c1"), Some(LOCAL_AUDIENCE)));
        assert_eq!(claims["cognito:groups"], json!(["admin"]));
        assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 60);
        let customer = issuer.claims(&TokenRequest { sub: "c2".into(), groups: vec![], expires_in: None }).unwrap();
        assert!(customer.get("cognito:groups").is_none());
        for bad in [
            TokenRequest { sub: " ".into(), groups: vec![], expires_in: None },
            TokenRequest { sub: "c".into(), groups: vec![], expires_in: Some(0) },
        ] {
            assert!(issuer.claims(&bad).is_err());
        }
        let jwk = &issuer.jwks().keys[0];
        assert!(jwk.common.key_id.as_deref().unwrap().starts_with("local-"));
        assert!(matches!(jwk.algorithm, jsonwebtoken::jwk::AlgorithmParameters::RSA(_)));
    }
}
