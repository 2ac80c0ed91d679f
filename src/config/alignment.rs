//! Alignment and dependencies (SPEC §4): which objective aligns to which,
//! and which key result depends on which, across teams.
//!
//! Two halves:
//! - [`References`] reads the raw documents and checks every `aligns_to`
//!   and `depends_on` against all objectives (unknown targets at the
//!   reference, `aligns_to` cycles naming every objective in them, a KR
//!   that depends on itself, an objective without key results that nothing
//!   aligns to). Like the other cross-file checks, it reads the raw tree, so
//!   a reference is checked even when its objective has other errors.
//! - [`Alignment`] is the checked shape, built once per config: each
//!   objective's parent and children, the tree in display order, and every
//!   dependency as positions in config order (the scorecard's order).

use std::collections::{HashMap, HashSet};

use super::error::Diagnostics;
use super::objective::{KrRef, Objective};
use super::yaml::{Node, Span};

/// Every reference the objective documents make, as written.
#[derive(Debug, Default)]
pub(super) struct References {
    objectives: Vec<Declared>,
}

#[derive(Debug)]
struct Declared {
    file: String,
    id: String,
    span: Span,
    aligns_to: Option<(String, Span)>,
    key_results: Vec<String>,
    depends_on: Vec<DeclaredDependency>,
}

#[derive(Debug)]
struct DeclaredDependency {
    key_result: String,
    path: String,
    target: String,
    span: Span,
}

impl References {
    /// Records one objective document of `file`.
    pub(super) fn add(&mut self, file: &str, doc: &Node) {
        let Some(id) = doc.get("id").and_then(Node::as_str) else {
            return;
        };
        let aligns_to = doc
            .get("aligns_to")
            .and_then(|n| n.as_str().map(|s| (s.to_string(), n.span)));
        let mut key_results = Vec::new();
        let mut depends_on = Vec::new();
        for (i, kr) in doc
            .get("key_results")
            .map_or(&[][..], Node::items)
            .iter()
            .enumerate()
        {
            let kr_id = kr.get("id").and_then(Node::as_str).unwrap_or_default();
            key_results.push(kr_id.to_string());
            for (j, target) in kr
                .get("depends_on")
                .map_or(&[][..], Node::items)
                .iter()
                .enumerate()
            {
                if let Some(t) = target.as_str() {
                    depends_on.push(DeclaredDependency {
                        key_result: kr_id.to_string(),
                        path: format!("key_results[{i}].depends_on[{j}]"),
                        target: t.to_string(),
                        span: target.span,
                    });
                }
            }
        }
        self.objectives.push(Declared {
            file: file.to_string(),
            id: id.to_string(),
            span: doc.get("key_results").map_or(doc.span, |n| n.span),
            aligns_to,
            key_results,
            depends_on,
        });
    }

    /// Reports every broken reference to `diags`.
    pub(super) fn check(&self, diags: &mut Diagnostics) {
        // The first declaration of an id is the one (a duplicate is an
        // error of its own).
        let mut by_id: HashMap<&str, &Declared> = HashMap::new();
        for o in &self.objectives {
            by_id.entry(o.id.as_str()).or_insert(o);
        }
        let aligned_to: HashSet<&str> = self
            .objectives
            .iter()
            .filter_map(|o| o.aligns_to.as_ref().map(|(t, _)| t.as_str()))
            .collect();
        for o in &self.objectives {
            diags.set_file(&o.file);
            if let Some((target, span)) = &o.aligns_to {
                if !by_id.contains_key(target.as_str()) {
                    diags.error_at(
                        *span,
                        "aligns_to",
                        format!("unknown objective {target:?}: no objective has this id"),
                    );
                }
            }
            if o.key_results.is_empty() && !aligned_to.contains(o.id.as_str()) {
                diags.error_at(
                    o.span,
                    "key_results",
                    format!(
                        "objective {} has no key results and no objective aligns to it: \
                         add a key result, or align other objectives to it",
                        o.id
                    ),
                );
            }
            for d in &o.depends_on {
                let Some(target) = KrRef::parse(&d.target) else {
                    continue; // reported where the key result is loaded
                };
                let message = if target.objective == o.id && target.key_result == d.key_result {
                    format!(
                        "key result {}/{} depends on itself: a dependency is another key result",
                        o.id, d.key_result
                    )
                } else {
                    match by_id.get(target.objective.as_str()) {
                        None => format!(
                            "unknown key result {target}: no objective has id {:?}",
                            target.objective
                        ),
                        Some(t) if !t.key_results.contains(&target.key_result) => format!(
                            "unknown key result {target}: objective {} has no key result {:?} (it has: {})",
                            t.id,
                            target.key_result,
                            if t.key_results.is_empty() {
                                "none".to_string()
                            } else {
                                t.key_results.join(", ")
                            }
                        ),
                        Some(_) => continue,
                    }
                };
                diags.error_at(d.span, &d.path, message);
            }
        }
        self.check_cycles(&by_id, diags);
    }

    /// One error per `aligns_to` cycle, at the `aligns_to` of its first
    /// declared objective, naming every objective in it.
    fn check_cycles(&self, by_id: &HashMap<&str, &Declared>, diags: &mut Diagnostics) {
        let parent = |id: &str| -> Option<&str> {
            let (target, _) = by_id.get(id)?.aligns_to.as_ref()?;
            by_id
                .contains_key(target.as_str())
                .then_some(target.as_str())
        };
        let mut done: HashSet<&str> = HashSet::new();
        for o in &self.objectives {
            let mut path: Vec<&str> = Vec::new();
            let mut at = Some(o.id.as_str());
            while let Some(id) = at {
                if done.contains(id) {
                    break;
                }
                if let Some(start) = path.iter().position(|p| *p == id) {
                    let cycle = &path[start..];
                    let first = self
                        .objectives
                        .iter()
                        .find(|d| cycle.contains(&d.id.as_str()))
                        .expect("the cycle's objectives are declared");
                    let from = cycle
                        .iter()
                        .position(|c| *c == first.id)
                        .expect("in the cycle");
                    let mut names: Vec<&str> = cycle[from..]
                        .iter()
                        .chain(&cycle[..from])
                        .copied()
                        .collect();
                    names.push(first.id.as_str());
                    diags.set_file(&first.file);
                    diags.error_at(
                        first.aligns_to.as_ref().map_or(first.span, |(_, s)| *s),
                        "aligns_to",
                        format!(
                            "aligns_to forms a cycle: {}: an objective cannot align to itself, \
                             directly or through others",
                            names.join(" → ")
                        ),
                    );
                    break;
                }
                path.push(id);
                at = parent(id);
            }
            done.extend(path);
        }
    }
}

/// The checked shape of the organisation's objectives, by position in
/// config order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Alignment {
    parent: Vec<Option<usize>>,
    children: Vec<Vec<usize>>,
    tree: Vec<(usize, usize)>,
    first_kr: Vec<usize>,
    dependencies: Vec<Dependency>,
    depends_on: Vec<Vec<usize>>,
    dependents: Vec<Vec<usize>>,
}

/// One `depends_on` entry: the KR at `from` needs the KR at `to` (flat
/// positions: objectives in config order, each objective's KRs in order).
#[derive(Debug, Clone, PartialEq)]
pub struct Dependency {
    /// The dependent KR.
    pub from: KrRef,
    /// The KR it depends on.
    pub to: KrRef,
    /// The dependent KR's flat position.
    pub from_index: usize,
    /// The dependency's flat position.
    pub to_index: usize,
    /// The position of the dependent KR's objective.
    pub from_objective: usize,
    /// The position of the dependency's objective.
    pub to_objective: usize,
}

impl Alignment {
    /// The shape of validated `objectives` (every reference known, no
    /// cycle); a reference that is not is left out.
    pub fn new(objectives: &[Objective]) -> Alignment {
        let index: HashMap<&str, usize> = objectives
            .iter()
            .enumerate()
            .map(|(i, o)| (o.id.as_str(), i))
            .collect();
        let mut first_kr = Vec::with_capacity(objectives.len());
        let mut total = 0;
        for o in objectives {
            first_kr.push(total);
            total += o.key_results.len();
        }
        let parent: Vec<Option<usize>> = objectives
            .iter()
            .enumerate()
            .map(|(i, o)| {
                o.aligns_to
                    .as_deref()
                    .and_then(|p| index.get(p).copied())
                    .filter(|&p| p != i)
            })
            .collect();
        let mut children = vec![Vec::new(); objectives.len()];
        for (i, p) in parent.iter().enumerate() {
            if let Some(p) = p {
                children[*p].push(i);
            }
        }
        let mut tree = Vec::with_capacity(objectives.len());
        let mut seen = vec![false; objectives.len()];
        for root in (0..objectives.len()).filter(|&i| parent[i].is_none()) {
            let mut stack = vec![(root, 0)];
            while let Some((o, depth)) = stack.pop() {
                if std::mem::replace(&mut seen[o], true) {
                    continue;
                }
                tree.push((o, depth));
                stack.extend(children[o].iter().rev().map(|&c| (c, depth + 1)));
            }
        }
        let mut dependencies = Vec::new();
        let mut depends_on = vec![Vec::new(); total];
        let mut dependents = vec![Vec::new(); total];
        for (oi, o) in objectives.iter().enumerate() {
            for (ki, kr) in o.key_results.iter().enumerate() {
                for to in &kr.depends_on {
                    let Some(&toi) = index.get(to.objective.as_str()) else {
                        continue;
                    };
                    let Some(tki) = objectives[toi]
                        .key_results
                        .iter()
                        .position(|k| k.id == to.key_result)
                    else {
                        continue;
                    };
                    let (from_index, to_index) = (first_kr[oi] + ki, first_kr[toi] + tki);
                    if from_index == to_index {
                        continue;
                    }
                    depends_on[from_index].push(dependencies.len());
                    dependents[to_index].push(dependencies.len());
                    dependencies.push(Dependency {
                        from: KrRef {
                            objective: o.id.clone(),
                            key_result: kr.id.clone(),
                        },
                        to: to.clone(),
                        from_index,
                        to_index,
                        from_objective: oi,
                        to_objective: toi,
                    });
                }
            }
        }
        Alignment {
            parent,
            children,
            tree,
            first_kr,
            dependencies,
            depends_on,
            dependents,
        }
    }

    /// The objective `o` aligns to.
    pub fn parent(&self, o: usize) -> Option<usize> {
        self.parent.get(o).copied().flatten()
    }

    /// The objectives aligned to `o`, in config order.
    pub fn children(&self, o: usize) -> &[usize] {
        self.children.get(o).map_or(&[], Vec::as_slice)
    }

    /// Every objective once, parents before their children (roots and
    /// siblings in config order), with its depth (0 for a root).
    pub fn tree(&self) -> &[(usize, usize)] {
        &self.tree
    }

    /// The flat position of objective `o`'s first KR.
    pub fn first_kr(&self, o: usize) -> usize {
        self.first_kr.get(o).copied().unwrap_or(0)
    }

    /// Every dependency, in config order of the dependent KR.
    pub fn dependencies(&self) -> &[Dependency] {
        &self.dependencies
    }

    /// The dependencies of the KR at flat position `kr`.
    pub fn depends_on(&self, kr: usize) -> impl Iterator<Item = &Dependency> {
        self.depends_on
            .get(kr)
            .into_iter()
            .flatten()
            .map(|&d| &self.dependencies[d])
    }

    /// The dependencies on the KR at flat position `kr`.
    pub fn dependents(&self, kr: usize) -> impl Iterator<Item = &Dependency> {
        self.dependents
            .get(kr)
            .into_iter()
            .flatten()
            .map(|&d| &self.dependencies[d])
    }
}
