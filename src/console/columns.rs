//! Column layout for the console's lists: which columns fit a width and how
//! wide each gets. Every screen is designed at 80 columns first; a wider
//! terminal brings back the columns of lower priority and widens the rest.

/// One column as a list asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    /// Lower is more important: when the width runs out, the highest
    /// number goes first (the rightmost of equals).
    pub priority: u8,
    /// Never narrower: a column that cannot have this is dropped whole.
    pub min: u16,
    /// Never wider (a name column: its longest name).
    pub max: u16,
    /// Its share of the width left once every kept column has its minimum
    /// (0: it stays at its minimum).
    pub flex: u16,
}

impl Column {
    /// A column of one width (a time, a count, a state).
    pub const fn fixed(priority: u8, width: u16) -> Column {
        Column {
            priority,
            min: width,
            max: width,
            flex: 0,
        }
    }

    /// A column that takes a `flex` share of what is left, from `min` up to `max`.
    pub const fn flexible(priority: u8, min: u16, max: u16, flex: u16) -> Column {
        Column {
            priority,
            min,
            max,
            flex,
        }
    }
}

/// The width of each column in `width` screen columns with `spacing`
/// between neighbours; `None` for the columns dropped.
pub fn fit(columns: &[Column], width: u16, spacing: u16) -> Vec<Option<u16>> {
    let mut kept: Vec<bool> = vec![true; columns.len()];
    while needed(columns, &kept, spacing) > u32::from(width) {
        let Some(drop) = least_important(columns, &kept) else {
            break;
        };
        kept[drop] = false;
    }
    let mut widths: Vec<Option<u16>> = columns
        .iter()
        .zip(&kept)
        .map(|(c, keep)| keep.then_some(c.min.min(c.max.max(c.min))))
        .collect();
    let left = u32::from(width).saturating_sub(needed(columns, &kept, spacing));
    share_out(columns, &mut widths, left);
    bring_back(columns, &mut widths, width, spacing);
    widths
}

/// Room no kept column wants (each is at its maximum) goes to columns
/// dropped before, most important first, while they fit: dropping a wide
/// column can leave room for a narrower one.
fn bring_back(columns: &[Column], widths: &mut [Option<u16>], width: u16, spacing: u16) {
    let used: u32 = widths.iter().flatten().map(|w| u32::from(*w)).sum();
    let gaps = widths.iter().flatten().count().saturating_sub(1);
    let gaps = u32::try_from(gaps).unwrap_or(u32::MAX) * u32::from(spacing);
    let mut unused = u32::from(width).saturating_sub(used + gaps);
    let mut dropped: Vec<usize> = (0..columns.len())
        .filter(|&i| widths[i].is_none())
        .collect();
    dropped.sort_by_key(|&i| (columns[i].priority, i));
    for i in dropped {
        let needs = u32::from(columns[i].min) + u32::from(spacing);
        if needs <= unused {
            widths[i] = Some(columns[i].min);
            unused -= needs;
        }
    }
}

/// Columns the kept columns take at their minimum, spacing included.
fn needed(columns: &[Column], kept: &[bool], spacing: u16) -> u32 {
    let (count, sum) = columns
        .iter()
        .zip(kept)
        .filter(|(_, keep)| **keep)
        .fold((0u32, 0u32), |(n, sum), (c, _)| {
            (n + 1, sum + u32::from(c.min))
        });
    sum + count.saturating_sub(1) * u32::from(spacing)
}

/// The kept column to drop first: highest priority number, rightmost.
fn least_important(columns: &[Column], kept: &[bool]) -> Option<usize> {
    columns
        .iter()
        .enumerate()
        .filter(|(i, _)| kept[*i])
        .max_by_key(|(i, c)| (c.priority, *i))
        .map(|(i, _)| i)
}

/// Gives `left` columns to the flexible columns by their shares, none past
/// its maximum; what they cannot take stays unused (at the right edge).
fn share_out(columns: &[Column], widths: &mut [Option<u16>], mut left: u32) {
    loop {
        let growing: Vec<usize> = (0..columns.len())
            .filter(|&i| columns[i].flex > 0 && widths[i].is_some_and(|w| w < columns[i].max))
            .collect();
        let shares: u32 = growing.iter().map(|&i| u32::from(columns[i].flex)).sum();
        if left == 0 || shares == 0 {
            return;
        }
        let round = left;
        for &i in &growing {
            // At least one column each round, so a small rest still goes out.
            let share = (round * u32::from(columns[i].flex) / shares).max(1);
            let current = widths[i].unwrap_or(0);
            let room = u32::from(columns[i].max - current);
            let take = share.min(room).min(left);
            // `take` is at most `room`, a u16 difference.
            widths[i] = Some(current + take as u16);
            left -= take;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Column, fit};

    fn total(widths: &[Option<u16>], spacing: u16) -> u16 {
        let kept: Vec<u16> = widths.iter().flatten().copied().collect();
        kept.iter().sum::<u16>() + spacing * (kept.len() as u16).saturating_sub(1)
    }

    #[test]
    fn everything_fits_and_the_flexible_columns_share_the_rest() {
        let columns = [
            Column::fixed(0, 8),
            Column::flexible(0, 10, 100, 1),
            Column::flexible(1, 10, 100, 3),
        ];
        let widths = fit(&columns, 62, 1);
        assert_eq!(widths, vec![Some(8), Some(18), Some(34)]);
        assert_eq!(total(&widths, 1), 62);
    }

    #[test]
    fn the_least_important_go_first_the_rightmost_of_equals() {
        let columns = [
            Column::flexible(0, 20, 40, 1),
            Column::fixed(2, 10),
            Column::fixed(1, 10),
            Column::fixed(2, 10),
        ];
        // All four need 53; 42 keeps three: the rightmost priority 2 goes.
        assert_eq!(
            fit(&columns, 42, 1),
            vec![Some(20), Some(10), Some(10), None]
        );
        // 31 keeps two: the other priority 2 goes next.
        assert_eq!(fit(&columns, 31, 1), vec![Some(20), None, Some(10), None]);
        // Too narrow for the most important: it is dropped too, never cut.
        assert_eq!(fit(&columns, 10, 1), vec![None, None, None, None]);
    }

    #[test]
    fn no_column_grows_past_its_maximum_or_shrinks_below_its_minimum() {
        let columns = [
            Column::flexible(0, 12, 15, 1),
            Column::flexible(1, 10, 200, 1),
        ];
        let widths = fit(&columns, 80, 1);
        assert_eq!(widths, vec![Some(15), Some(64)]);
        // A name column whose longest name is short asks for no more.
        let capped = [Column::flexible(0, 8, 9, 1), Column::fixed(0, 5)];
        assert_eq!(fit(&capped, 80, 1), vec![Some(9), Some(5)]);
        for width in 0..120 {
            for (c, w) in columns.iter().zip(fit(&columns, width, 1)) {
                if let Some(w) = w {
                    assert!(w >= c.min && w <= c.max, "{width}: {w} for {c:?}");
                }
            }
            assert!(total(&fit(&columns, width, 1), 1) <= width);
        }
    }

    #[test]
    fn room_nobody_wants_brings_back_a_narrower_column_dropped_before() {
        let columns = [
            Column::fixed(2, 8),
            Column::flexible(0, 10, 13, 1),
            Column::fixed(1, 30),
        ];
        // 30 goes, then 8: 10 is left over, and the 8 comes back.
        assert_eq!(fit(&columns, 30, 1), vec![Some(8), Some(13), None]);
        // A flexible column still wanting room keeps it instead.
        let hungry = [
            Column::fixed(2, 8),
            Column::flexible(0, 10, 100, 1),
            Column::fixed(1, 30),
        ];
        assert_eq!(fit(&hungry, 30, 1), vec![None, Some(30), None]);
    }

    #[test]
    fn a_one_column_rest_still_goes_to_someone() {
        let columns = [
            Column::flexible(0, 10, 100, 2),
            Column::flexible(0, 10, 100, 2),
        ];
        assert_eq!(total(&fit(&columns, 22, 1), 1), 22);
        assert_eq!(total(&fit(&columns, 21, 1), 1), 21);
    }
}
