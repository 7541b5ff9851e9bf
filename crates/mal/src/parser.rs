//! Recursive-descent parser for MAL expressions and Groovy-like closures.
use crate::ast::{BinOp, Closure, Expr, ExprKind, Stmt, UnaryOp};
use crate::error::ParseError;
use crate::lexer::tokenize;
use crate::span::{Part, Span};
use crate::token::{Token, TokenKind};

/// Most tokens in one expression. Every tree node takes at least one token, so this bounds the
/// tree's size, and the depth `Drop` recurses to when a too-deep tree is thrown away. Real rules
/// use a few hundred at most.
pub const MAX_TOKENS: usize = 10_000;

/// Deepest recursion of the parser: each parenthesis, call argument, operand of a prefix or
/// right-hand operator, ternary branch, closure and statement block counts one or more levels.
pub const MAX_NESTING: usize = 150;

/// Highest tree accepted. The compiler and the evaluator recurse once per level, so an
/// operator chain (`a + a + …`, parsed by a loop) must be bounded as well as nesting.
pub const MAX_HEIGHT: usize = 100;

/// Parses one expression of `part`; the whole text must be consumed.
pub(crate) fn parse(src: &str, part: Part) -> Result<Expr, ParseError> {
    let tokens = tokenize(src, part)?;
    if tokens.len() > MAX_TOKENS {
        return Err(ParseError::new(
            format!(
                "expression has {} tokens, more than the {MAX_TOKENS} allowed",
                tokens.len()
            ),
            tokens[MAX_TOKENS].span,
        ));
    }
    let mut p = Parser {
        tokens,
        pos: 0,
        newline_sensitive: vec![false],
        depth: 0,
    };
    let e = p.expr()?;
    let t = p.peek();
    if t.kind != TokenKind::Eof {
        return Err(ParseError::new(
            format!("unexpected {} after the expression", t.kind.describe()),
            t.span,
        ));
    }
    if height(&e) > MAX_HEIGHT {
        return Err(ParseError::new(
            format!("expression nests deeper than {MAX_HEIGHT} levels"),
            e.span,
        ));
    }
    Ok(e)
}

/// A node of the tree: expressions and closure statements.
enum Node<'a> {
    Expr(&'a Expr),
    Stmt(&'a Stmt),
}

/// The tree's height, walked with an explicit stack since the tree may be too deep to recurse.
fn height(root: &Expr) -> usize {
    let mut highest = 0;
    let mut stack = vec![(Node::Expr(root), 1usize)];
    while let Some((node, level)) = stack.pop() {
        highest = highest.max(level);
        let below = level + 1;
        match node {
            Node::Expr(e) => match &e.kind {
                ExprKind::Number(..)
                | ExprKind::Str(_)
                | ExprKind::Bool(_)
                | ExprKind::Null
                | ExprKind::Ident(_) => {}
                ExprKind::List(items) => {
                    stack.extend(items.iter().map(|i| (Node::Expr(i), below)));
                }
                ExprKind::Map(entries) => {
                    for (k, v) in entries {
                        stack.push((Node::Expr(k), below));
                        stack.push((Node::Expr(v), below));
                    }
                }
                ExprKind::Closure(c) => {
                    stack.extend(c.body.iter().map(|s| (Node::Stmt(s), below)));
                }
                ExprKind::Property { target, .. }
                | ExprKind::Unary { expr: target, .. }
                | ExprKind::Cast { expr: target, .. } => stack.push((Node::Expr(target), below)),
                ExprKind::Index { target, index } => {
                    stack.push((Node::Expr(target), below));
                    stack.push((Node::Expr(index), below));
                }
                ExprKind::Call { target, args, .. } => {
                    if let Some(t) = target {
                        stack.push((Node::Expr(t), below));
                    }
                    stack.extend(args.iter().map(|a| (Node::Expr(a), below)));
                }
                ExprKind::Binary { lhs, rhs, .. } | ExprKind::Elvis { lhs, rhs } => {
                    stack.push((Node::Expr(lhs), below));
                    stack.push((Node::Expr(rhs), below));
                }
                ExprKind::Ternary {
                    cond,
                    then,
                    otherwise,
                } => {
                    stack.push((Node::Expr(cond), below));
                    stack.push((Node::Expr(then), below));
                    stack.push((Node::Expr(otherwise), below));
                }
                ExprKind::Assign { target, value } => {
                    stack.push((Node::Expr(target), below));
                    stack.push((Node::Expr(value), below));
                }
            },
            Node::Stmt(s) => match s {
                Stmt::Expr(e) => stack.push((Node::Expr(e), below)),
                Stmt::Var { value, .. } | Stmt::Return(value, _) => {
                    if let Some(v) = value {
                        stack.push((Node::Expr(v), below));
                    }
                }
                Stmt::If {
                    cond,
                    then,
                    otherwise,
                } => {
                    stack.push((Node::Expr(cond), below));
                    stack.extend(then.iter().map(|s| (Node::Stmt(s), below)));
                    if let Some(o) = otherwise {
                        stack.extend(o.iter().map(|s| (Node::Stmt(s), below)));
                    }
                }
                Stmt::Block(body) => stack.extend(body.iter().map(|s| (Node::Stmt(s), below))),
            },
        }
    }
    highest
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    /// Open guarded calls (see [`Parser::enter`]), against [`MAX_NESTING`].
    depth: usize,
    /// Whether a line break ends the current expression (closure statements: yes; inside
    /// brackets and at MAL level: no), innermost last.
    newline_sensitive: Vec<bool>,
}

type PResult<T> = Result<T, ParseError>;

impl Parser {
    fn peek(&self) -> &Token {
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn peek_at(&self, n: usize) -> &Token {
        &self.tokens[(self.pos + n).min(self.tokens.len() - 1)]
    }

    fn bump(&mut self) -> Token {
        let t = self.peek().clone();
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        t
    }

    fn at(&self, kind: &TokenKind) -> bool {
        &self.peek().kind == kind
    }

    fn eat(&mut self, kind: &TokenKind) -> bool {
        if self.at(kind) {
            self.bump();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, kind: TokenKind, what: &str) -> PResult<Token> {
        if self.at(&kind) {
            Ok(self.bump())
        } else {
            let t = self.peek();
            Err(ParseError::new(
                format!("expected {what}, found {}", t.kind.describe()),
                t.span,
            ))
        }
    }

    fn is_keyword(&self, word: &str) -> bool {
        matches!(&self.peek().kind, TokenKind::Ident(s) if s == word)
    }

    /// Whether a line break before the next token ends the expression here.
    fn stops_at_newline(&self) -> bool {
        self.peek().newline_before && self.newline_sensitive.last().copied().unwrap_or(false)
    }

    fn nested<T>(
        &mut self,
        sensitive: bool,
        f: impl FnOnce(&mut Self) -> PResult<T>,
    ) -> PResult<T> {
        self.newline_sensitive.push(sensitive);
        let r = f(self);
        self.newline_sensitive.pop();
        r
    }

    /// Runs `f` one nesting level deeper, refusing past [`MAX_NESTING`]: every recursive path
    /// of the parser goes through one of the guarded functions.
    fn enter<T>(&mut self, f: impl FnOnce(&mut Self) -> PResult<T>) -> PResult<T> {
        if self.depth >= MAX_NESTING {
            return Err(ParseError::new(
                format!("expression nests deeper than {MAX_NESTING} levels"),
                self.peek().span,
            ));
        }
        self.depth += 1;
        let r = f(self);
        self.depth -= 1;
        r
    }

    fn expr(&mut self) -> PResult<Expr> {
        self.assignment()
    }

    fn assignment(&mut self) -> PResult<Expr> {
        self.enter(Self::assignment_inner)
    }

    fn assignment_inner(&mut self) -> PResult<Expr> {
        let lhs = self.ternary()?;
        if self.at(&TokenKind::Eq) && !self.stops_at_newline() {
            let eq = self.bump();
            if !matches!(
                lhs.kind,
                ExprKind::Ident(_) | ExprKind::Property { .. } | ExprKind::Index { .. }
            ) {
                return Err(ParseError::new("cannot assign to this expression", eq.span));
            }
            let value = self.assignment()?;
            let span = lhs.span.to(value.span);
            return Ok(Expr::new(
                ExprKind::Assign {
                    target: Box::new(lhs),
                    value: Box::new(value),
                },
                span,
            ));
        }
        Ok(lhs)
    }

    fn ternary(&mut self) -> PResult<Expr> {
        self.enter(Self::ternary_inner)
    }

    fn ternary_inner(&mut self) -> PResult<Expr> {
        let cond = self.binary(0)?;
        if self.stops_at_newline() {
            return Ok(cond);
        }
        if self.eat(&TokenKind::Question) {
            let then = self.nested(false, |p| p.ternary())?;
            self.expect(TokenKind::Colon, "':' of the ternary operator")?;
            let otherwise = self.ternary()?;
            let span = cond.span.to(otherwise.span);
            return Ok(Expr::new(
                ExprKind::Ternary {
                    cond: Box::new(cond),
                    then: Box::new(then),
                    otherwise: Box::new(otherwise),
                },
                span,
            ));
        }
        if self.eat(&TokenKind::Elvis) {
            let rhs = self.ternary()?;
            let span = cond.span.to(rhs.span);
            return Ok(Expr::new(
                ExprKind::Elvis {
                    lhs: Box::new(cond),
                    rhs: Box::new(rhs),
                },
                span,
            ));
        }
        Ok(cond)
    }

    /// The binary operator at the cursor and its precedence (higher binds tighter).
    fn binary_op(&self) -> Option<(BinOp, u8)> {
        let op = match &self.peek().kind {
            TokenKind::OrOr => (BinOp::Or, 1),
            TokenKind::AndAnd => (BinOp::And, 2),
            TokenKind::EqEq => (BinOp::Eq, 3),
            TokenKind::NotEq => (BinOp::NotEq, 3),
            TokenKind::RegexFind => (BinOp::RegexFind, 3),
            TokenKind::RegexMatch => (BinOp::RegexMatch, 3),
            TokenKind::Lt => (BinOp::Lt, 4),
            TokenKind::Le => (BinOp::Le, 4),
            TokenKind::Gt => (BinOp::Gt, 4),
            TokenKind::Ge => (BinOp::Ge, 4),
            TokenKind::Ident(s) if s == "in" => (BinOp::In, 4),
            TokenKind::Plus => (BinOp::Add, 5),
            TokenKind::Minus => (BinOp::Sub, 5),
            TokenKind::Star => (BinOp::Mul, 6),
            TokenKind::Slash => (BinOp::Div, 6),
            TokenKind::Percent => (BinOp::Mod, 6),
            _ => return None,
        };
        Some(op)
    }

    fn binary(&mut self, min_prec: u8) -> PResult<Expr> {
        let mut lhs = self.unary()?;
        loop {
            if self.stops_at_newline() {
                break;
            }
            if self.is_keyword("as") {
                self.bump();
                let ty = self.bump();
                let TokenKind::Ident(name) = ty.kind else {
                    return Err(ParseError::new("expected a type name after 'as'", ty.span));
                };
                let span = lhs.span.to(ty.span);
                lhs = Expr::new(
                    ExprKind::Cast {
                        expr: Box::new(lhs),
                        ty: name,
                    },
                    span,
                );
                continue;
            }
            let Some((op, prec)) = self.binary_op() else {
                break;
            };
            if prec <= min_prec {
                break;
            }
            self.bump();
            let rhs = self.binary(prec)?;
            let span = lhs.span.to(rhs.span);
            lhs = Expr::new(
                ExprKind::Binary {
                    op,
                    lhs: Box::new(lhs),
                    rhs: Box::new(rhs),
                },
                span,
            );
        }
        Ok(lhs)
    }

    fn unary(&mut self) -> PResult<Expr> {
        self.enter(Self::unary_inner)
    }

    fn unary_inner(&mut self) -> PResult<Expr> {
        let op = match self.peek().kind {
            TokenKind::Minus => Some(UnaryOp::Neg),
            TokenKind::Plus => Some(UnaryOp::Plus),
            TokenKind::Bang => Some(UnaryOp::Not),
            _ => None,
        };
        if let Some(op) = op {
            let t = self.bump();
            let e = self.unary()?;
            let span = t.span.to(e.span);
            return Ok(Expr::new(
                ExprKind::Unary {
                    op,
                    expr: Box::new(e),
                },
                span,
            ));
        }
        self.postfix()
    }

    fn postfix(&mut self) -> PResult<Expr> {
        let mut e = self.primary()?;
        loop {
            match self.peek().kind {
                TokenKind::Dot | TokenKind::SafeDot => {
                    let safe = self.bump().kind == TokenKind::SafeDot;
                    let name_tok = self.bump();
                    let name = match name_tok.kind {
                        TokenKind::Ident(n) => n,
                        // Groovy allows quoted property names (`tags.'a.b'`).
                        TokenKind::Str(s) => s,
                        other => {
                            return Err(ParseError::new(
                                format!("expected a name after '.', found {}", other.describe()),
                                name_tok.span,
                            ))
                        }
                    };
                    if self.at(&TokenKind::LParen) {
                        let (args, end) = self.args()?;
                        let span = e.span.to(end);
                        e = Expr::new(
                            ExprKind::Call {
                                target: Some(Box::new(e)),
                                name,
                                name_span: name_tok.span,
                                args,
                                safe,
                            },
                            span,
                        );
                    } else {
                        let span = e.span.to(name_tok.span);
                        e = Expr::new(
                            ExprKind::Property {
                                target: Box::new(e),
                                name,
                                safe,
                            },
                            span,
                        );
                    }
                }
                TokenKind::LBracket if !self.stops_at_newline() => {
                    self.bump();
                    let index = self.nested(false, |p| p.expr())?;
                    let end = self.expect(TokenKind::RBracket, "']'")?;
                    let span = e.span.to(end.span);
                    e = Expr::new(
                        ExprKind::Index {
                            target: Box::new(e),
                            index: Box::new(index),
                        },
                        span,
                    );
                }
                _ => break,
            }
        }
        Ok(e)
    }

    fn args(&mut self) -> PResult<(Vec<Expr>, Span)> {
        self.expect(TokenKind::LParen, "'('")?;
        self.nested(false, |p| {
            let mut args = Vec::new();
            if !p.at(&TokenKind::RParen) {
                loop {
                    args.push(p.expr()?);
                    if !p.eat(&TokenKind::Comma) {
                        break;
                    }
                }
            }
            let end = p.expect(TokenKind::RParen, "',' or ')' in the argument list")?;
            Ok((args, end.span))
        })
    }

    fn primary(&mut self) -> PResult<Expr> {
        let t = self.peek().clone();
        match t.kind {
            TokenKind::Number(v, integral) => {
                self.bump();
                Ok(Expr::new(ExprKind::Number(v, integral), t.span))
            }
            TokenKind::Str(s) => {
                self.bump();
                Ok(Expr::new(ExprKind::Str(s), t.span))
            }
            TokenKind::Ident(name) => {
                self.bump();
                match name.as_str() {
                    "true" => return Ok(Expr::new(ExprKind::Bool(true), t.span)),
                    "false" => return Ok(Expr::new(ExprKind::Bool(false), t.span)),
                    "null" => return Ok(Expr::new(ExprKind::Null, t.span)),
                    _ => {}
                }
                let mut name = name;
                let mut name_span = t.span;
                if self.at(&TokenKind::DoubleColon) {
                    self.bump();
                    let m = self.bump();
                    let TokenKind::Ident(method) = m.kind else {
                        return Err(ParseError::new(
                            "expected a function name after '::'",
                            m.span,
                        ));
                    };
                    name = format!("{name}::{method}");
                    name_span = t.span.to(m.span);
                    if !self.at(&TokenKind::LParen) {
                        return Err(ParseError::new(
                            "expected '(' after an extension function name",
                            self.peek().span,
                        ));
                    }
                }
                if self.at(&TokenKind::LParen) && !self.stops_at_newline() {
                    let (args, end) = self.args()?;
                    return Ok(Expr::new(
                        ExprKind::Call {
                            target: None,
                            name,
                            name_span,
                            args,
                            safe: false,
                        },
                        t.span.to(end),
                    ));
                }
                Ok(Expr::new(ExprKind::Ident(name), t.span))
            }
            TokenKind::LParen => {
                self.bump();
                let inner = self.nested(false, |p| p.expr())?;
                let end = self.expect(TokenKind::RParen, "')'")?;
                Ok(Expr::new(inner.kind, t.span.to(end.span)))
            }
            TokenKind::LBracket => {
                self.bump();
                self.nested(false, |p| p.list_or_map(t.span))
            }
            TokenKind::LBrace => {
                let c = self.closure()?;
                let span = c.span;
                Ok(Expr::new(ExprKind::Closure(Box::new(c)), span))
            }
            other => Err(ParseError::new(
                format!("expected an expression, found {}", other.describe()),
                t.span,
            )),
        }
    }

    fn list_or_map(&mut self, open: Span) -> PResult<Expr> {
        if self.at(&TokenKind::Colon) && self.peek_at(1).kind == TokenKind::RBracket {
            self.bump();
            let end = self.bump();
            return Ok(Expr::new(ExprKind::Map(Vec::new()), open.to(end.span)));
        }
        if let Some(end) = self.eat_close_bracket() {
            return Ok(Expr::new(ExprKind::List(Vec::new()), open.to(end)));
        }
        let first = self.expr()?;
        if self.eat(&TokenKind::Colon) {
            let mut entries = vec![(first, self.expr()?)];
            while self.eat(&TokenKind::Comma) {
                if self.at(&TokenKind::RBracket) {
                    break;
                }
                let k = self.expr()?;
                self.expect(TokenKind::Colon, "':' in a map literal")?;
                entries.push((k, self.expr()?));
            }
            let end = self.expect(TokenKind::RBracket, "',' or ']' in a map literal")?;
            return Ok(Expr::new(ExprKind::Map(entries), open.to(end.span)));
        }
        let mut items = vec![first];
        while self.eat(&TokenKind::Comma) {
            if self.at(&TokenKind::RBracket) {
                break;
            }
            items.push(self.expr()?);
        }
        let end = self.expect(TokenKind::RBracket, "',' or ']' in a list")?;
        Ok(Expr::new(ExprKind::List(items), open.to(end.span)))
    }

    fn eat_close_bracket(&mut self) -> Option<Span> {
        if self.at(&TokenKind::RBracket) {
            Some(self.bump().span)
        } else {
            None
        }
    }

    fn closure(&mut self) -> PResult<Closure> {
        let open = self.expect(TokenKind::LBrace, "'{'")?;
        // Parameters: `a, b ->` or a bare `->`.
        let mut params = Vec::new();
        let mut n = 0;
        let mut has_params = false;
        loop {
            match &self.peek_at(n).kind {
                TokenKind::Ident(_) => {
                    // Typed parameter (`String s ->`): skip the type.
                    if matches!(self.peek_at(n + 1).kind, TokenKind::Ident(_)) {
                        n += 1;
                    }
                    n += 1;
                    match self.peek_at(n).kind {
                        TokenKind::Comma => n += 1,
                        TokenKind::Arrow => {
                            has_params = true;
                            break;
                        }
                        _ => break,
                    }
                }
                TokenKind::Arrow if n == 0 => {
                    has_params = true;
                    break;
                }
                _ => break,
            }
        }
        if has_params {
            while !self.at(&TokenKind::Arrow) {
                let t = self.bump();
                if let TokenKind::Ident(name) = t.kind {
                    if matches!(self.peek().kind, TokenKind::Comma | TokenKind::Arrow) {
                        params.push(name);
                    }
                }
                self.eat(&TokenKind::Comma);
            }
            self.bump();
        }
        let body = self.nested(true, |p| p.statements())?;
        let close = self.expect(TokenKind::RBrace, "'}' closing the closure")?;
        Ok(Closure {
            params,
            body,
            span: open.span.to(close.span),
        })
    }

    /// Statements up to (not including) the closing `}`.
    fn statements(&mut self) -> PResult<Vec<Stmt>> {
        let mut out = Vec::new();
        loop {
            while self.eat(&TokenKind::Semicolon) {}
            if self.at(&TokenKind::RBrace) || self.at(&TokenKind::Eof) {
                return Ok(out);
            }
            let stmt = self.statement()?;
            out.push(stmt);
            let t = self.peek();
            let ok = matches!(
                t.kind,
                TokenKind::Semicolon | TokenKind::RBrace | TokenKind::Eof
            ) || t.newline_before;
            if !ok {
                return Err(ParseError::new(
                    format!("unexpected {} after a statement", t.kind.describe()),
                    t.span,
                ));
            }
        }
    }

    fn block_or_statement(&mut self) -> PResult<Vec<Stmt>> {
        if self.at(&TokenKind::LBrace) {
            self.bump();
            let body = self.nested(true, |p| p.statements())?;
            self.expect(TokenKind::RBrace, "'}' closing the block")?;
            Ok(body)
        } else {
            Ok(vec![self.statement()?])
        }
    }

    fn statement(&mut self) -> PResult<Stmt> {
        self.enter(Self::statement_inner)
    }

    fn statement_inner(&mut self) -> PResult<Stmt> {
        let t = self.peek().clone();
        if let TokenKind::Ident(word) = &t.kind {
            match word.as_str() {
                "if" => {
                    self.bump();
                    self.expect(TokenKind::LParen, "'(' after 'if'")?;
                    let cond = self.nested(false, |p| p.expr())?;
                    self.expect(TokenKind::RParen, "')' closing the if condition")?;
                    let then = self.block_or_statement()?;
                    let otherwise = if self.is_keyword("else") {
                        self.bump();
                        if self.is_keyword("if") {
                            Some(vec![self.statement()?])
                        } else {
                            Some(self.block_or_statement()?)
                        }
                    } else {
                        None
                    };
                    return Ok(Stmt::If {
                        cond,
                        then,
                        otherwise,
                    });
                }
                "return" => {
                    self.bump();
                    let next = self.peek();
                    if matches!(
                        next.kind,
                        TokenKind::RBrace | TokenKind::Semicolon | TokenKind::Eof
                    ) || next.newline_before
                    {
                        return Ok(Stmt::Return(None, t.span));
                    }
                    let e = self.expr()?;
                    let span = t.span.to(e.span);
                    return Ok(Stmt::Return(Some(e), span));
                }
                _ => {}
            }
            // `def x = ...` or `Type x = ...`
            if let TokenKind::Ident(name) = &self.peek_at(1).kind {
                let next2 = self.peek_at(2);
                let decl = word == "def"
                    || next2.kind == TokenKind::Eq
                    || matches!(next2.kind, TokenKind::Semicolon | TokenKind::RBrace)
                    || next2.newline_before;
                if decl && !self.peek_at(1).newline_before && word != "in" && word != "as" {
                    let name = name.clone();
                    self.bump();
                    let name_tok = self.bump();
                    let value = if self.eat(&TokenKind::Eq) {
                        Some(self.expr()?)
                    } else {
                        None
                    };
                    let span = t
                        .span
                        .to(value.as_ref().map(|v| v.span).unwrap_or(name_tok.span));
                    return Ok(Stmt::Var { name, value, span });
                }
            }
        }
        if self.at(&TokenKind::LBrace) {
            self.bump();
            let body = self.nested(true, |p| p.statements())?;
            self.expect(TokenKind::RBrace, "'}' closing the block")?;
            return Ok(Stmt::Block(body));
        }
        Ok(Stmt::Expr(self.expr()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Expr {
        parse(s, Part::Exp).unwrap()
    }

    #[test]
    fn precedence_of_arithmetic() {
        let e = p("a + b * 2");
        let ExprKind::Binary {
            op: BinOp::Add,
            rhs,
            ..
        } = e.kind
        else {
            panic!("{e:?}")
        };
        assert!(matches!(rhs.kind, ExprKind::Binary { op: BinOp::Mul, .. }));
    }

    #[test]
    fn closure_with_if_else_and_statements() {
        let e = p("m.tag({tags -> if (tags['a'] == '1') {tags.b = 'x'} else {tags.b = 'y'}\n tags.c = 'z' })");
        let ExprKind::Call { args, .. } = e.kind else {
            panic!()
        };
        let ExprKind::Closure(c) = &args[0].kind else {
            panic!()
        };
        assert_eq!(c.params, vec!["tags".to_string()]);
        assert_eq!(c.body.len(), 2);
    }

    #[test]
    fn map_literal_and_elvis() {
        let e = p("{ tags -> ['a': tags.x ?: 'n/a', 'b': tags.y] }");
        let ExprKind::Closure(c) = e.kind else {
            panic!()
        };
        let Stmt::Expr(Expr {
            kind: ExprKind::Map(m),
            ..
        }) = &c.body[0]
        else {
            panic!()
        };
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn missing_paren_is_an_error_with_place() {
        let e = parse("a.sum(['x']", Part::Exp).unwrap_err();
        assert!(e.message.contains("')'"), "{}", e.message);
        assert_eq!(e.span.start, 11);
    }
}
