use crate::error::Error;

/// Where the database is and how many connections a node keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresConfig {
    /// Host name or address.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Database name.
    pub database: String,
    /// User (`SW_DATA_SOURCE_USER`).
    pub user: String,
    /// Password (`SW_DATA_SOURCE_PASSWORD`); empty for none (trust or peer auth).
    pub password: String,
    /// Connections this node keeps open at most.
    pub pool_size: usize,
    /// This node's name: its write-ahead-log marks are stored under it, so it must be unique
    /// among the nodes sharing the database and stay the same across restarts.
    pub node_id: String,
}

impl PostgresConfig {
    /// Reads OAP's `jdbc:postgresql://host[:port]/database[?params]` (parameters are ignored).
    pub fn from_jdbc_url(
        url: &str,
        user: &str,
        password: &str,
        pool_size: usize,
        node_id: &str,
    ) -> Result<Self, Error> {
        let bad = |reason| Error::BadUrl {
            url: url.to_string(),
            reason,
        };
        let rest = url
            .strip_prefix("jdbc:postgresql://")
            .or_else(|| url.strip_prefix("postgresql://"))
            .or_else(|| url.strip_prefix("postgres://"))
            .ok_or_else(|| bad("it must start with jdbc:postgresql://"))?;
        let rest = rest.split('?').next().unwrap_or_default();
        let (authority, database) = rest
            .split_once('/')
            .ok_or_else(|| bad("it names no database"))?;
        if database.is_empty() || database.contains('/') {
            return Err(bad("it names no single database"));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((host, port)) => (
                host,
                port.parse::<u16>()
                    .map_err(|_| bad("the port is not a number from 0 to 65535"))?,
            ),
            None => (authority, 5432),
        };
        if host.is_empty() {
            return Err(bad("it names no host"));
        }
        if pool_size == 0 {
            return Err(bad("the pool size must be at least 1"));
        }
        Ok(PostgresConfig {
            host: host.to_string(),
            port,
            database: database.to_string(),
            user: user.to_string(),
            password: password.to_string(),
            pool_size,
            node_id: node_id.to_string(),
        })
    }

    pub(crate) fn driver_config(&self) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host(&self.host)
            .port(self.port)
            .dbname(&self.database)
            .user(&self.user)
            .application_name("skylark")
            .connect_timeout(std::time::Duration::from_secs(10));
        if !self.password.is_empty() {
            config.password(&self.password);
        }
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jdbc_urls_are_read_as_oap_writes_them() {
        let c = PostgresConfig::from_jdbc_url(
            "jdbc:postgresql://db.example:6432/skywalking?sslmode=disable",
            "u",
            "p",
            4,
            "n1",
        )
        .unwrap();
        assert_eq!(
            (c.host.as_str(), c.port, c.database.as_str()),
            ("db.example", 6432, "skywalking")
        );
        let c = PostgresConfig::from_jdbc_url("jdbc:postgresql://localhost/sw", "", "", 1, "n")
            .unwrap();
        assert_eq!(c.port, 5432);
    }

    #[test]
    fn bad_jdbc_urls_say_why() {
        for (url, reason) in [
            ("jdbc:mysql://h/db", "jdbc:postgresql://"),
            ("jdbc:postgresql://h", "no database"),
            ("jdbc:postgresql://h:99999/db", "port"),
            ("jdbc:postgresql://:5432/db", "no host"),
        ] {
            let err = PostgresConfig::from_jdbc_url(url, "", "", 1, "n").unwrap_err();
            assert!(err.to_string().contains(reason), "{url}: {err}");
        }
    }
}
