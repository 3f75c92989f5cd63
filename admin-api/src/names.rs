//! Names of clusters, tenants and namespaces, checked as Pulsar's `NamedEntity` does: non-empty,
//! made of ASCII letters, digits and `-=:._` only (so never a `/`).

use std::fmt;

/// Why a name was refused (412 on REST).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} name {name:?}: {reason}")]
pub struct NameError {
    pub kind: &'static str,
    pub name: String,
    pub reason: &'static str,
}

/// Checks a cluster, tenant or namespace name.
pub fn check_name(kind: &'static str, name: &str) -> Result<(), NameError> {
    let err = |reason| NameError {
        kind,
        name: name.to_string(),
        reason,
    };
    if name.is_empty() {
        return Err(err("must not be empty"));
    }
    if name.len() > 255 {
        return Err(err("must be at most 255 characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-=:._".contains(&b))
    {
        return Err(err("may only contain letters, digits and -=:._"));
    }
    if name == "." || name == ".." {
        return Err(err("must not be '.' or '..'"));
    }
    Ok(())
}

/// `tenant/namespace`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NamespaceName {
    pub tenant: String,
    pub namespace: String,
}

impl NamespaceName {
    /// A checked namespace name.
    pub fn new(tenant: &str, namespace: &str) -> Result<NamespaceName, NameError> {
        check_name("tenant", tenant)?;
        check_name("namespace", namespace)?;
        Ok(NamespaceName {
            tenant: tenant.into(),
            namespace: namespace.into(),
        })
    }

    /// Parses `tenant/namespace`.
    pub fn parse(name: &str) -> Result<NamespaceName, NameError> {
        match name.split_once('/') {
            Some((tenant, namespace)) => NamespaceName::new(tenant, namespace),
            None => Err(NameError {
                kind: "namespace",
                name: name.into(),
                reason: "must be tenant/namespace",
            }),
        }
    }
}

impl fmt::Display for NamespaceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.tenant, self.namespace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["a", "my-tenant", "ns.v2", "x=y:z_1"] {
            assert!(check_name("tenant", good).is_ok(), "{good}");
        }
        for bad in ["", "a/b", "a b", "ü", "..", "a%2Fb"] {
            assert!(check_name("tenant", bad).is_err(), "{bad}");
        }
        assert_eq!(
            NamespaceName::parse("t/ns").expect("valid").to_string(),
            "t/ns"
        );
        assert!(NamespaceName::parse("t").is_err());
        assert!(NamespaceName::parse("t/ns/x").is_err());
    }
}
