//! The query value the adapter hands to the inner executor once it has read the SQL.

use sqlx::{Database, Execute, SqlStr};

/// `Execute::sql` consumes the query, so the adapter takes the arguments and the persistence
/// flag first and forwards all three in this value.
pub(crate) struct Forwarded<DB: Database> {
    pub(crate) sql: SqlStr,
    pub(crate) arguments: Option<DB::Arguments>,
    pub(crate) persistent: bool,
}

impl<DB: Database> Forwarded<DB> {
    /// Splits a user's query into its parts; an argument that failed to encode is returned as
    /// the error sqlx itself would return.
    pub(crate) fn take<'q, E: Execute<'q, DB>>(mut query: E) -> Result<Self, sqlx::Error> {
        let arguments = query.take_arguments().map_err(sqlx::Error::Encode)?;
        let persistent = query.persistent();
        Ok(Forwarded {
            sql: query.sql(),
            arguments,
            persistent,
        })
    }
}

impl<'q, DB: Database> Execute<'q, DB> for Forwarded<DB> {
    fn sql(self) -> SqlStr {
        self.sql
    }

    fn statement(&self) -> Option<&DB::Statement> {
        None
    }

    fn take_arguments(&mut self) -> Result<Option<DB::Arguments>, sqlx::error::BoxDynError> {
        Ok(self.arguments.take())
    }

    fn persistent(&self) -> bool {
        self.persistent
    }
}
