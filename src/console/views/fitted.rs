//! A list's columns fitted to the width there is: which columns show, the
//! header, and each row's cells drawn in the width their column got. A row
//! is data (one function per column), so a column's cell can change (a
//! state gaining a "held" reason) without touching the layout.

use ratatui::layout::Constraint;
use ratatui::widgets::{Cell, Row};

use crate::console::columns::{self, Column};

/// Column spacing in every list.
pub const SPACING: u16 = 1;

/// Draws one row's value in a column of the given width.
pub type CellFn<'a, T> = Box<dyn Fn(&T, usize) -> Cell<'static> + 'a>;

/// One column of a list: its title, how it fits, and how it draws a row's
/// value in the columns it got.
pub struct ListColumn<'a, T> {
    pub title: &'static str,
    pub fit: Column,
    pub cell: CellFn<'a, T>,
}

impl<'a, T> ListColumn<'a, T> {
    pub fn new(
        title: &'static str,
        fit: Column,
        cell: impl Fn(&T, usize) -> Cell<'static> + 'a,
    ) -> Self {
        ListColumn {
            title,
            fit,
            cell: Box::new(cell),
        }
    }
}

/// The columns that fit, each with its width.
pub struct Fitted<'a, T> {
    columns: Vec<(ListColumn<'a, T>, u16)>,
}

impl<'a, T> Fitted<'a, T> {
    pub fn new(columns: Vec<ListColumn<'a, T>>, width: u16) -> Self {
        let fits: Vec<Column> = columns.iter().map(|c| c.fit).collect();
        let widths = columns::fit(&fits, width, SPACING);
        let columns = columns
            .into_iter()
            .zip(widths)
            .filter_map(|(column, width)| width.map(|w| (column, w)))
            .collect();
        Fitted { columns }
    }

    pub fn header(&self) -> Row<'static> {
        Row::new(self.columns.iter().map(|(c, _)| Cell::from(c.title)))
    }

    pub fn widths(&self) -> Vec<Constraint> {
        self.columns
            .iter()
            .map(|(_, w)| Constraint::Length(*w))
            .collect()
    }

    pub fn row(&self, item: &T) -> Row<'static> {
        Row::new(
            self.columns
                .iter()
                .map(|(c, w)| (c.cell)(item, usize::from(*w))),
        )
    }
}

/// A name column: as wide as its longest name when there is room, at
/// least `min` (or the longest, when shorter), never narrower than its title.
pub fn name_fit(priority: u8, title: &str, longest: usize, min: u16, flex: u16) -> Column {
    let title = u16::try_from(title.len()).unwrap_or(u16::MAX);
    let longest = u16::try_from(longest).unwrap_or(u16::MAX).max(title);
    Column::flexible(priority, longest.min(min).max(title), longest, flex)
}
