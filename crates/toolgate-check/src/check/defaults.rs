//! The policy-wide default scope, `scope default tenant, env, ctx.f;`: at most
//! one (pass 1), checked like a rule's `scope` (pass 2, once `context` is
//! known), and the scope of every grant without its own.

use super::Checker;
use crate::ir;
use toolgate_syntax::ast::{self, Span};

impl Checker<'_> {
    /// Pass 1: the first `scope default` is kept; another is a duplicate.
    pub(super) fn default_scope_decl(&mut self, span: Span) {
        match &self.default_scope {
            Some((first, _)) => {
                let first = *first;
                self.duplicate("default scope", "scope default", span, first);
            }
            None => self.default_scope = Some((span, Vec::new())),
        }
    }

    /// Pass 2: checks the first `scope default` like a rule's `scope`.
    pub(super) fn default_scope(&mut self, file: &ast::File) {
        let first = file.items.iter().find_map(|i| match &i.node {
            ast::Item::DefaultScope(paths) => Some(paths),
            _ => None,
        });
        if let (Some(paths), Some(span)) = (first, self.default_scope.as_ref().map(|d| d.0)) {
            let scope = self.scope(paths);
            self.default_scope = Some((span, scope));
        }
    }

    /// The scope of a grant without a `scope` clause: the policy's default
    /// scope, else `tenant, env`.
    pub(super) fn rule_default_scope(&self) -> Vec<ir::ScopeItem> {
        match &self.default_scope {
            Some((_, scope)) => scope.clone(),
            None => ir::default_scope(),
        }
    }
}
