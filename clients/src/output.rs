//! Human-readable output: aligned tables and key/value listings; `--json` bypasses all this.

use serde::Serialize;

/// Prints rows under headers, columns padded to their widest cell.
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.len());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", padded.join("  ").trim_end());
    };
    line(headers.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

/// Prints the fields of a JSON object as a two-column table (nested values as JSON).
pub(crate) fn fields<T: Serialize>(value: &T) {
    let value = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
    let Some(object) = value.as_object() else {
        println!("{value}");
        return;
    };
    let rows: Vec<Vec<String>> = object
        .iter()
        .map(|(k, v)| {
            let text = match v {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Array(items) => items
                    .iter()
                    .map(|i| {
                        i.as_str()
                            .map(str::to_string)
                            .unwrap_or_else(|| i.to_string())
                    })
                    .collect::<Vec<_>>()
                    .join(","),
                other => other.to_string(),
            };
            vec![k.clone(), text]
        })
        .collect();
    table(&["FIELD", "VALUE"], &rows);
}

/// Prints one name per line.
pub(crate) fn names<'a>(names: impl IntoIterator<Item = &'a String>) {
    for name in names {
        println!("{name}");
    }
}

/// Pretty JSON.
pub(crate) fn json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
