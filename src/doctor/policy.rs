//! Reading IAM and KMS policy documents: statements with their principals, actions and
//! conditions normalised (a string or a list reads as a list), and the questions the checks
//! ask of them ("which Allow statements give this principal these actions?").
//!
//! Pure functions over `serde_json::Value`, no I/O. Matching is what IAM does for the parts
//! the checks need: case-insensitive actions with `*` wildcards, exact principals.

use serde_json::Value;

/// One statement of a policy.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Statement {
    pub sid: Option<String>,
    pub allow: bool,
    /// `("AWS", "arn:...")`, `("Service", "drs.amazonaws.com")`, `("*", "*")`.
    pub principals: Vec<(String, String)>,
    pub actions: Vec<String>,
    pub resources: Vec<String>,
    pub conditions: Vec<Condition>,
}

/// One condition: operator (`StringEquals`), key (`aws:SourceAccount`) and values.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub operator: String,
    pub key: String,
    pub values: Vec<String>,
}

fn strings(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        Some(Value::Bool(b)) => vec![b.to_string()],
        _ => Vec::new(),
    }
}

/// The statements of a policy document (a single statement object reads as one).
pub fn statements(document: &Value) -> Vec<Statement> {
    let raw: Vec<&Value> = match document.get("Statement") {
        Some(Value::Array(items)) => items.iter().collect(),
        Some(item @ Value::Object(_)) => vec![item],
        _ => Vec::new(),
    };
    raw.into_iter().map(statement).collect()
}

fn statement(value: &Value) -> Statement {
    let principals = match value.get("Principal") {
        Some(Value::String(s)) => vec![("*".to_string(), s.clone())],
        Some(Value::Object(map)) => map
            .iter()
            .flat_map(|(kind, v)| strings(Some(v)).into_iter().map(move |p| (kind.clone(), p)))
            .collect(),
        _ => Vec::new(),
    };
    let conditions = value
        .get("Condition")
        .and_then(Value::as_object)
        .map(|operators| {
            operators
                .iter()
                .flat_map(|(operator, keys)| {
                    keys.as_object()
                        .into_iter()
                        .flatten()
                        .map(move |(key, values)| Condition {
                            operator: operator.clone(),
                            key: key.clone(),
                            values: strings(Some(values)),
                        })
                })
                .collect()
        })
        .unwrap_or_default();
    Statement {
        sid: value.get("Sid").and_then(Value::as_str).map(str::to_string),
        allow: value.get("Effect").and_then(Value::as_str) == Some("Allow"),
        principals,
        actions: strings(value.get("Action")),
        resources: strings(value.get("Resource")),
        conditions,
    }
}

/// Whether `pattern` (with `*` and `?` wildcards) matches `text`, ignoring ASCII case.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.to_ascii_lowercase().chars().collect();
    let t: Vec<char> = text.to_ascii_lowercase().chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

impl Statement {
    /// Whether the statement grants `action` (its `Action` patterns match it).
    pub fn grants(&self, action: &str) -> bool {
        self.allow && self.actions.iter().any(|a| wildcard_match(a, action))
    }

    /// Whether the statement names this principal (`kind` `AWS` or `Service`).
    pub fn names_principal(&self, kind: &str, principal: &str) -> bool {
        self.principals
            .iter()
            .any(|(k, p)| (k == kind || k == "*") && (p == principal || p == "*"))
    }

    /// The values of the conditions on `key` (any operator), with their operators.
    pub fn condition(&self, key: &str) -> Vec<&Condition> {
        self.conditions
            .iter()
            .filter(|c| c.key.eq_ignore_ascii_case(key))
            .collect()
    }

    /// Whether a condition on `key` requires exactly or matches `value` (String/Arn operators,
    /// `Like` ones with wildcards).
    pub fn condition_allows(&self, key: &str, value: &str) -> bool {
        self.condition(key).iter().any(|c| {
            c.values.iter().any(|v| {
                if c.operator.contains("Like") {
                    wildcard_match(v, value)
                } else {
                    v == value
                }
            })
        })
    }

    /// The AWS account IDs named by the statement's `AWS` principals.
    pub fn principal_accounts(&self) -> Vec<String> {
        self.principals
            .iter()
            .filter(|(kind, _)| kind == "AWS")
            .filter_map(|(_, p)| account_of(p))
            .collect()
    }
}

/// The account ID of an IAM principal: `arn:aws:iam::<account>:...` or a bare account ID.
pub fn account_of(principal: &str) -> Option<String> {
    if principal.len() == 12 && principal.bytes().all(|b| b.is_ascii_digit()) {
        return Some(principal.to_string());
    }
    let parts: Vec<&str> = principal.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", _, "iam", _, account, _] if !account.is_empty() => Some(account.to_string()),
        _ => None,
    }
}

/// The Allow statements naming this principal that grant every one of `actions`.
pub fn allowing<'a>(
    statements: &'a [Statement],
    kind: &str,
    principal: &str,
    actions: &[&str],
) -> Vec<&'a Statement> {
    statements
        .iter()
        .filter(|s| s.names_principal(kind, principal))
        .filter(|s| actions.iter().all(|a| s.grants(a)))
        .collect()
}

/// The actions among `actions` that no Allow statement naming the principal grants.
pub fn missing_actions(
    statements: &[Statement],
    kind: &str,
    principal: &str,
    actions: &[&str],
) -> Vec<String> {
    actions
        .iter()
        .filter(|a| {
            !statements
                .iter()
                .any(|s| s.names_principal(kind, principal) && s.grants(a))
        })
        .map(|a| a.to_string())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wildcards_match_like_iam() {
        assert!(wildcard_match("kms:*", "kms:Decrypt"));
        assert!(wildcard_match("kms:ReEncrypt*", "kms:ReEncryptFrom"));
        assert!(wildcard_match("KMS:decrypt", "kms:Decrypt"));
        assert!(wildcard_match(
            "arn:aws:drs:*:*:source-server/*",
            "arn:aws:drs:us-west-2:222222222222:source-server/s-1"
        ));
        assert!(!wildcard_match("kms:Decrypt", "kms:DescribeKey"));
        assert!(!wildcard_match("i-*", "s-1"));
    }

    #[test]
    fn statements_normalise_strings_and_lists() {
        let doc = json!({"Statement": {"Effect": "Allow", "Principal": {"AWS": ["arn:aws:iam::111111111111:root"]},
            "Action": "sts:AssumeRole", "Condition": {"StringEquals": {"aws:SourceAccount": "111111111111"}}}});
        let s = statements(&doc);
        assert_eq!(s.len(), 1);
        assert!(s[0].grants("sts:AssumeRole"));
        assert!(s[0].names_principal("AWS", "arn:aws:iam::111111111111:root"));
        assert!(s[0].condition_allows("aws:sourceaccount", "111111111111"));
        assert!(!s[0].condition_allows("aws:SourceAccount", "222222222222"));
        assert_eq!(s[0].principal_accounts(), vec!["111111111111"]);
        assert_eq!(
            missing_actions(
                &s,
                "AWS",
                "arn:aws:iam::111111111111:root",
                &["sts:AssumeRole", "sts:TagSession"]
            ),
            vec!["sts:TagSession"]
        );
    }

    #[test]
    fn deny_statements_grant_nothing() {
        let doc = json!({"Statement": [{"Effect": "Deny", "Principal": "*", "Action": "*"}]});
        assert!(allowing(&statements(&doc), "AWS", "x", &["kms:Decrypt"]).is_empty());
    }
}
