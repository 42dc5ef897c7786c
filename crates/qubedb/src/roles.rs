//! Roles: who may connect, with which password, and what they may create.
//!
//! Roles belong to the data directory, not to one database (PostgreSQL's `pg_authid` is a shared
//! catalog): they live in the default database's store under `Key::Role` and the [`Cluster`] caches
//! them. A fresh directory has one role, `qubedb` (OID 10), a superuser without a password: the
//! embedded API and `qubedb sql` run as it, and an administrator gives it a password with
//! `ALTER ROLE qubedb PASSWORD '...'` before serving with `--auth scram-sha-256`.
//!
//! Passwords are never stored: `PASSWORD 'text'` stores a SCRAM-SHA-256 verifier (PostgreSQL's format,
//! `SCRAM-SHA-256$4096:<salt>$<StoredKey>:<ServerKey>`, RFC 5802 / 7677), from which the server checks a
//! client's proof without being able to log in itself; a verifier given as the password (what psql's
//! `\password` and `pg_dumpall` send) is stored as it is.
//!
//! `CREATE / ALTER / DROP ROLE` (and `USER`) commit on their own, outside the session's transaction, so
//! like CREATE DATABASE they are refused inside a transaction block (PostgreSQL would roll them back with
//! the block; we cannot, the roles being in another store). Role membership (`IN ROLE`, `GRANT role`)
//! and object privileges are not modelled yet: every role that can log in reads and writes every table.
//!
//! [`Cluster`]: crate::Cluster

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use datafusion::sql::sqlparser::ast::{
    AlterRoleOperation, CreateRole, Expr, ObjectName, Password, RoleOption, Statement, Value,
};
use qubedb_model::catalog::RoleDef;

use crate::error::{Error, Result};
use crate::result::StatementOutcome;
use crate::session::Shared;

/// OID of the bootstrap superuser.
pub const BOOTSTRAP_ROLE_OID: u32 = 10;
/// Name of the bootstrap superuser.
pub const BOOTSTRAP_ROLE_NAME: &str = "qubedb";
/// First OID of a role created by `CREATE ROLE`.
const FIRST_ROLE_OID: u32 = 16_384;
/// PBKDF2 iterations of a new verifier (PostgreSQL's `scram_iterations` default).
pub const SCRAM_ITERATIONS: u32 = 4096;
/// Salt bytes of a new verifier (PostgreSQL's).
const SCRAM_SALT_BYTES: usize = 16;
/// Longest role name, in bytes.
const ROLE_NAME_BYTES_MAX: usize = 63;

/// The bootstrap superuser, as a fresh data directory has it.
pub(crate) fn bootstrap_role() -> RoleDef {
    RoleDef {
        oid: BOOTSTRAP_ROLE_OID,
        name: BOOTSTRAP_ROLE_NAME.to_string(),
        superuser: true,
        inherit: true,
        create_role: true,
        create_database: true,
        login: true,
        replication: true,
        bypass_rls: true,
        connection_limit: -1,
        password: None,
        valid_until: None,
    }
}

/// A parsed SCRAM-SHA-256 verifier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScramVerifier {
    pub iterations: u32,
    pub salt: Vec<u8>,
    /// `SHA-256(HMAC(SaltedPassword, "Client Key"))`
    pub stored_key: Vec<u8>,
    /// `HMAC(SaltedPassword, "Server Key")`
    pub server_key: Vec<u8>,
}

impl ScramVerifier {
    /// Parses `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>` (base64 parts).
    pub fn parse(text: &str) -> Option<ScramVerifier> {
        let rest = text.strip_prefix("SCRAM-SHA-256$")?;
        let (parameters, keys) = rest.split_once('$')?;
        let (iterations, salt) = parameters.split_once(':')?;
        let (stored_key, server_key) = keys.split_once(':')?;
        let verifier = ScramVerifier {
            iterations: iterations.parse().ok().filter(|&count| count > 0)?,
            salt: BASE64.decode(salt).ok()?,
            stored_key: BASE64.decode(stored_key).ok()?,
            server_key: BASE64.decode(server_key).ok()?,
        };
        (verifier.stored_key.len() == 32 && verifier.server_key.len() == 32).then_some(verifier)
    }

    /// The verifier of `password` with a fresh random salt.
    pub fn generate(password: &str) -> Result<ScramVerifier> {
        let mut salt = vec![0u8; SCRAM_SALT_BYTES];
        aws_lc_rs::rand::fill(&mut salt)
            .map_err(|_| Error::internal("the system's random source failed"))?;
        Ok(Self::derive(password, salt, SCRAM_ITERATIONS))
    }

    /// The verifier of `password` (normalized with SASLprep, as PostgreSQL and libpq do) with `salt` and
    /// `iterations`.
    pub fn derive(password: &str, salt: Vec<u8>, iterations: u32) -> ScramVerifier {
        use aws_lc_rs::{digest, hmac, pbkdf2};
        let normalized = stringprep::saslprep(password);
        let password: &str = normalized.as_deref().unwrap_or(password);
        let mut salted_password = [0u8; 32];
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            std::num::NonZeroU32::new(iterations.max(1)).expect("at least one iteration"),
            &salt,
            password.as_bytes(),
            &mut salted_password,
        );
        let key = hmac::Key::new(hmac::HMAC_SHA256, &salted_password);
        let client_key = hmac::sign(&key, b"Client Key");
        let stored_key = digest::digest(&digest::SHA256, client_key.as_ref());
        let server_key = hmac::sign(&key, b"Server Key");
        ScramVerifier {
            iterations,
            salt,
            stored_key: stored_key.as_ref().to_vec(),
            server_key: server_key.as_ref().to_vec(),
        }
    }

    /// PostgreSQL's text form.
    pub fn to_text(&self) -> String {
        format!(
            "SCRAM-SHA-256${}:{}${}:{}",
            self.iterations,
            BASE64.encode(&self.salt),
            BASE64.encode(&self.stored_key),
            BASE64.encode(&self.server_key)
        )
    }
}

/// Runs `CREATE ROLE`, `ALTER ROLE` or `DROP ROLE` (and their `USER` forms) for `current_user`;
/// `None` for any other statement.
pub(crate) fn execute(
    shared: &Shared,
    current_user: &str,
    statement: &Statement,
) -> Result<Option<StatementOutcome>> {
    match statement {
        Statement::CreateRole(create) => create_roles(shared, current_user, create).map(Some),
        Statement::AlterRole { name, operation } => {
            alter_role(shared, current_user, &name.value, operation).map(Some)
        }
        Statement::Drop {
            object_type:
                datafusion::sql::sqlparser::ast::ObjectType::Role
                | datafusion::sql::sqlparser::ast::ObjectType::User,
            names,
            if_exists,
            ..
        } => drop_roles(shared, current_user, names, *if_exists).map(Some),
        _ => Ok(None),
    }
}

/// True for the statements [`execute`] runs.
pub(crate) fn is_role_statement(statement: &Statement) -> bool {
    matches!(
        statement,
        Statement::CreateRole(_)
            | Statement::AlterRole { .. }
            | Statement::Drop {
                object_type: datafusion::sql::sqlparser::ast::ObjectType::Role
                    | datafusion::sql::sqlparser::ast::ObjectType::User,
                ..
            }
    )
}

/// The role `name`, if any.
fn find<'a>(roles: &'a [RoleDef], name: &str) -> Option<&'a RoleDef> {
    roles.iter().find(|role| role.name == name)
}

fn permission_denied(message: impl Into<String>) -> Error {
    Error::user("42501", message)
}

fn role_name(name: &ObjectName) -> Result<String> {
    match crate::sql::rewrite::parts(name)?.as_slice() {
        [name] => check_role_name(name.clone()),
        _ => Err(Error::user("42601", format!("improper role name: {name}"))),
    }
}

fn check_role_name(name: String) -> Result<String> {
    if name.is_empty() {
        return Err(Error::user(
            "42602",
            "zero-length delimited identifier is not a valid role name",
        ));
    }
    if name.len() > ROLE_NAME_BYTES_MAX {
        return Err(Error::user(
            "42622",
            format!("role name \"{name}\" is too long (at most {ROLE_NAME_BYTES_MAX} bytes)"),
        ));
    }
    if name.starts_with("pg_") {
        return Err(
            Error::user("42939", format!("role name \"{name}\" is reserved"))
                .with_detail("Role names starting with \"pg_\" are reserved."),
        );
    }
    Ok(name)
}

fn create_roles(
    shared: &Shared,
    current_user: &str,
    create: &CreateRole,
) -> Result<StatementOutcome> {
    if !(create.in_role.is_empty()
        && create.in_group.is_empty()
        && create.role.is_empty()
        && create.user.is_empty()
        && create.admin.is_empty())
    {
        return Err(Error::not_supported(
            "role membership (IN ROLE, ROLE, USER, ADMIN)",
        ));
    }
    if create.authorization_owner.is_some() {
        return Err(Error::not_supported("CREATE ROLE ... AUTHORIZATION"));
    }
    let mut options = Vec::new();
    let flags = [
        (
            create.superuser,
            RoleOption::SuperUser as fn(bool) -> RoleOption,
        ),
        (create.create_db, RoleOption::CreateDB),
        (create.create_role, RoleOption::CreateRole),
        (create.inherit, RoleOption::Inherit),
        (create.login, RoleOption::Login),
        (create.replication, RoleOption::Replication),
        (create.bypassrls, RoleOption::BypassRLS),
    ];
    for (value, option) in flags {
        if let Some(value) = value {
            options.push(option(value));
        }
    }
    if let Some(limit) = &create.connection_limit {
        options.push(RoleOption::ConnectionLimit(limit.clone()));
    }
    if let Some(password) = &create.password {
        options.push(RoleOption::Password(password.clone()));
    }
    if let Some(until) = &create.valid_until {
        options.push(RoleOption::ValidUntil(until.clone()));
    }
    let names = create
        .names
        .iter()
        .map(role_name)
        .collect::<Result<Vec<_>>>()?;
    shared.database.cluster.change_roles(|roles, transaction| {
        let actor = find(roles, current_user);
        let may_create = actor.is_some_and(|actor| actor.superuser || actor.create_role);
        if !may_create {
            return Err(permission_denied("permission denied to create role")
                .with_detail("Only roles with the CREATEROLE attribute may create roles."));
        }
        let mut next_oid = roles
            .iter()
            .map(|role| role.oid + 1)
            .chain([FIRST_ROLE_OID])
            .max()
            .expect("the chain is never empty");
        let mut created = Vec::new();
        for name in &names {
            if find(roles, name).is_some()
                || created.iter().any(|role: &RoleDef| &role.name == name)
            {
                if create.if_not_exists {
                    shared.notice("42710", format!("role \"{name}\" already exists, skipping"));
                    continue;
                }
                return Err(Error::user(
                    "42710",
                    format!("role \"{name}\" already exists"),
                ));
            }
            let mut role = RoleDef {
                oid: next_oid,
                name: name.clone(),
                superuser: false,
                inherit: true,
                create_role: false,
                create_database: false,
                login: false,
                replication: false,
                bypass_rls: false,
                connection_limit: -1,
                password: None,
                valid_until: None,
            };
            next_oid += 1;
            apply_options(
                shared,
                &mut role,
                &options,
                actor.is_some_and(|actor| actor.superuser),
            )?;
            created.push(role);
        }
        for role in &created {
            qubedb_model::catalog::write_role(transaction, role)?;
        }
        Ok(())
    })?;
    Ok(StatementOutcome::command("CREATE ROLE", 0))
}

fn alter_role(
    shared: &Shared,
    current_user: &str,
    name: &str,
    operation: &AlterRoleOperation,
) -> Result<StatementOutcome> {
    shared.database.cluster.change_roles(|roles, transaction| {
        let actor = find(roles, current_user);
        let actor_superuser = actor.is_some_and(|actor| actor.superuser);
        let Some(target) = find(roles, name) else {
            return Err(Error::user(
                "42704",
                format!("role \"{name}\" does not exist"),
            ));
        };
        let mut role = target.clone();
        match operation {
            AlterRoleOperation::RenameRole { role_name } => {
                let new_name = check_role_name(role_name.value.clone())?;
                if name == current_user {
                    return Err(Error::user("0A000", "session user cannot be renamed"));
                }
                may_manage(actor, target)?;
                if find(roles, &new_name).is_some() {
                    return Err(Error::user(
                        "42710",
                        format!("role \"{new_name}\" already exists"),
                    ));
                }
                role.name = new_name;
                // PostgreSQL clears a salted password on rename; a SCRAM verifier does not depend on
                // the name, so it stays.
            }
            AlterRoleOperation::WithOptions { options } => {
                let only_own_password = name == current_user
                    && options
                        .iter()
                        .all(|option| matches!(option, RoleOption::Password(_)));
                if !only_own_password {
                    may_manage(actor, target)?;
                }
                apply_options(shared, &mut role, options, actor_superuser)?;
                if role.oid == BOOTSTRAP_ROLE_OID && !role.superuser {
                    return Err(Error::user(
                        "42501",
                        format!(
                            "permission denied to alter role \"{name}\": the bootstrap superuser stays a superuser"
                        ),
                    ));
                }
            }
            AlterRoleOperation::AddMember { .. } | AlterRoleOperation::DropMember { .. } => {
                return Err(Error::not_supported("role membership"));
            }
            _ => {
                return Err(Error::not_supported(
                    "ALTER ROLE ... SET / RESET (per-role settings)",
                ));
            }
        }
        qubedb_model::catalog::write_role(transaction, &role)
            .map_err(Error::from)
    })?;
    Ok(StatementOutcome::command("ALTER ROLE", 0))
}

/// Whether `actor` may change `target`'s attributes (superusers: anyone; CREATEROLE: non-superusers).
fn may_manage(actor: Option<&RoleDef>, target: &RoleDef) -> Result<()> {
    match actor {
        Some(actor) if actor.superuser => Ok(()),
        Some(actor) if actor.create_role && !target.superuser => Ok(()),
        _ => Err(permission_denied(format!(
            "permission denied to alter role \"{}\"",
            target.name
        ))
        .with_detail(if target.superuser {
            "Only roles with the SUPERUSER attribute may alter roles with the SUPERUSER attribute."
        } else {
            "Only roles with the CREATEROLE attribute may alter roles."
        })),
    }
}

fn drop_roles(
    shared: &Shared,
    current_user: &str,
    names: &[ObjectName],
    if_exists: bool,
) -> Result<StatementOutcome> {
    let names = names
        .iter()
        .map(|name| match crate::sql::rewrite::parts(name)?.as_slice() {
            [name] => Ok(name.clone()),
            _ => Err(Error::user("42601", format!("improper role name: {name}"))),
        })
        .collect::<Result<Vec<_>>>()?;
    shared.database.cluster.change_roles(|roles, transaction| {
        let actor = find(roles, current_user);
        for name in &names {
            let Some(target) = find(roles, name) else {
                if if_exists {
                    shared.notice("00000", format!("role \"{name}\" does not exist, skipping"));
                    continue;
                }
                return Err(Error::user(
                    "42704",
                    format!("role \"{name}\" does not exist"),
                ));
            };
            if name == current_user {
                return Err(Error::user("55006", "current user cannot be dropped"));
            }
            if target.oid == BOOTSTRAP_ROLE_OID {
                return Err(Error::user(
                    "2BP01",
                    format!(
                        "cannot drop role {name} because it is required by the database system"
                    ),
                ));
            }
            match actor {
                Some(actor) if actor.superuser => {}
                Some(actor) if actor.create_role && !target.superuser => {}
                _ => {
                    return Err(permission_denied(format!(
                        "permission denied to drop role \"{name}\""
                    )));
                }
            }
            qubedb_model::catalog::delete_role(transaction, target.oid)?;
        }
        Ok(())
    })?;
    Ok(StatementOutcome::command("DROP ROLE", 0))
}

/// Applies role options; `actor_superuser`: whether the role running the statement is a superuser
/// (only superusers grant SUPERUSER, REPLICATION and BYPASSRLS).
fn apply_options(
    shared: &Shared,
    role: &mut RoleDef,
    options: &[RoleOption],
    actor_superuser: bool,
) -> Result<()> {
    let superuser_only = |attribute: &str| {
        permission_denied(format!("permission denied to grant {attribute}")).with_detail(format!(
            "Only roles with the SUPERUSER attribute may change the {attribute} attribute."
        ))
    };
    for option in options {
        match option {
            RoleOption::SuperUser(value) => {
                if !actor_superuser {
                    return Err(superuser_only("SUPERUSER"));
                }
                role.superuser = *value;
            }
            RoleOption::Replication(value) => {
                if !actor_superuser {
                    return Err(superuser_only("REPLICATION"));
                }
                role.replication = *value;
            }
            RoleOption::BypassRLS(value) => {
                if !actor_superuser {
                    return Err(superuser_only("BYPASSRLS"));
                }
                role.bypass_rls = *value;
            }
            RoleOption::CreateDB(value) => role.create_database = *value,
            RoleOption::CreateRole(value) => role.create_role = *value,
            RoleOption::Inherit(value) => role.inherit = *value,
            RoleOption::Login(value) => role.login = *value,
            RoleOption::ConnectionLimit(limit) => {
                let limit = literal_text(limit)
                    .and_then(|text| text.parse::<i32>().ok())
                    .filter(|&limit| limit >= -1)
                    .ok_or_else(|| {
                        Error::user("22023", format!("invalid connection limit: {limit}"))
                    })?;
                role.connection_limit = limit;
            }
            RoleOption::Password(Password::NullPassword) => role.password = None,
            RoleOption::Password(Password::Password(expression)) => {
                let Some(password) = literal_text(expression) else {
                    return Err(Error::user(
                        "42601",
                        format!("a password must be a string literal, not {expression}"),
                    ));
                };
                if password.is_empty() {
                    shared.notice(
                        "00000",
                        "empty string is not a valid password, clearing password",
                    );
                }
                role.password = password_verifier(&password)?;
            }
            RoleOption::ValidUntil(expression) => {
                let Some(text) = literal_text(expression) else {
                    return Err(Error::user(
                        "42601",
                        format!("VALID UNTIL needs a timestamp string, not {expression}"),
                    ));
                };
                role.valid_until = valid_until(&text)?;
            }
        }
    }
    Ok(())
}

/// What a role stores for `PASSWORD 'text'`: a verifier (computed, or given as one), or nothing for the
/// empty string (as PostgreSQL, which clears the password then).
fn password_verifier(password: &str) -> Result<Option<String>> {
    if password.is_empty() {
        return Ok(None);
    }
    if password.starts_with("SCRAM-SHA-256$") {
        return match ScramVerifier::parse(password) {
            Some(verifier) => Ok(Some(verifier.to_text())),
            None => Err(Error::user(
                "22023",
                "invalid SCRAM-SHA-256 verifier given as the password",
            )),
        };
    }
    if password.len() == 35
        && password.starts_with("md5")
        && password[3..].bytes().all(|byte| byte.is_ascii_hexdigit())
    {
        return Err(Error::not_supported(
            "an MD5-hashed password (QubeDB authenticates with SCRAM-SHA-256)",
        ));
    }
    Ok(Some(ScramVerifier::generate(password)?.to_text()))
}

/// `VALID UNTIL 'timestamp'`: stored as RFC 3339 in UTC; `'infinity'` means no limit.
fn valid_until(text: &str) -> Result<Option<String>> {
    use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
    let trimmed = text.trim();
    if trimmed.eq_ignore_ascii_case("infinity") {
        return Ok(None);
    }
    let parsed = DateTime::parse_from_rfc3339(trimmed)
        .map(|moment| moment.with_timezone(&Utc))
        .or_else(|_| {
            DateTime::parse_from_str(trimmed, "%Y-%m-%d %H:%M:%S%.f%#z")
                .map(|moment| moment.with_timezone(&Utc))
        })
        .or_else(|_| {
            NaiveDateTime::parse_from_str(trimmed, "%Y-%m-%d %H:%M:%S%.f")
                .map(|moment| moment.and_utc())
        })
        .or_else(|_| {
            NaiveDate::parse_from_str(trimmed, "%Y-%m-%d").map(|date| {
                date.and_hms_opt(0, 0, 0)
                    .expect("midnight exists")
                    .and_utc()
            })
        })
        .map_err(|_| {
            Error::user(
                "22007",
                format!("invalid input syntax for type timestamp with time zone: \"{text}\""),
            )
        })?;
    Ok(Some(parsed.to_rfc3339()))
}

/// The text of a literal option value (string or number).
fn literal_text(expression: &Expr) -> Option<String> {
    match expression {
        Expr::Value(value) => match &value.value {
            Value::SingleQuotedString(text)
            | Value::DoubleQuotedString(text)
            | Value::EscapedStringLiteral(text) => Some(text.clone()),
            Value::Number(number, _) => Some(number.to_string()),
            _ => None,
        },
        Expr::UnaryOp {
            op: datafusion::sql::sqlparser::ast::UnaryOperator::Minus,
            expr,
        } => literal_text(expr).map(|text| format!("-{text}")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677's test vector: user "user", password "pencil", salt "W22ZaJ0SNY7soEsUEjb6gQ==", 4096.
    #[test]
    fn verifier_matches_the_rfc_7677_example() {
        let salt = BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").expect("salt");
        let verifier = ScramVerifier::derive("pencil", salt, 4096);
        // The keys as PostgreSQL stores them for this password and salt (computed independently with
        // Python's hashlib.pbkdf2_hmac and hmac).
        assert_eq!(
            BASE64.encode(&verifier.server_key),
            "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
        );
        assert_eq!(
            BASE64.encode(&verifier.stored_key),
            "WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
        );
        let text = verifier.to_text();
        assert_eq!(ScramVerifier::parse(&text), Some(verifier));
        assert_eq!(ScramVerifier::parse("SCRAM-SHA-256$0:AA==$AA==:AA=="), None);
    }
}
