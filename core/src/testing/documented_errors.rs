//! The README's table of error codes, for the front ends' tests to hold
//! their mappings against it.

/// One row of the table: the codes it names, its gRPC status (as written,
/// e.g. `INVALID_ARGUMENT`) and its HTTP status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentedError {
    /// The codes of the row (several share one row).
    pub codes: Vec<String>,
    /// The gRPC status name.
    pub grpc: String,
    /// The HTTP status.
    pub http: u16,
}

/// The rows of the README's `| code | what it means | gRPC status | HTTP |`
/// table.
pub fn documented_errors() -> Vec<DocumentedError> {
    let readme = include_str!("../../../README.md");
    let start = readme
        .find("| code | what it means | gRPC status | HTTP |")
        .expect("the README has the error table");
    readme[start..]
        .lines()
        .skip(2)
        .take_while(|line| line.starts_with('|'))
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            assert_eq!(cells.len(), 4, "a row of four cells: {line}");
            DocumentedError {
                codes: cells[0]
                    .split(',')
                    .map(|code| code.trim().trim_matches('`').to_owned())
                    .collect(),
                grpc: cells[2].trim_matches('`').to_owned(),
                http: cells[3].parse().expect("an HTTP status"),
            }
        })
        .collect()
}

/// The row naming `code`; panics if none does.
pub fn documented_error(code: &str) -> DocumentedError {
    documented_errors()
        .into_iter()
        .find(|row| row.codes.iter().any(|c| c == code))
        .unwrap_or_else(|| panic!("the README's error table has no row for {code}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;

    /// Every code once, and nothing that is not one.
    #[test]
    fn the_table_names_every_code_once() {
        let mut documented: Vec<String> = documented_errors()
            .into_iter()
            .flat_map(|row| row.codes)
            .collect();
        documented.sort();
        let mut codes: Vec<String> = Error::CODES.iter().map(|c| (*c).to_owned()).collect();
        codes.sort();
        assert_eq!(documented, codes);
    }
}
