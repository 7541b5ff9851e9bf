//! Recursive-descent statements, Pratt expressions.
use crate::ast::{Arg, BinaryOp, Block, Expr, IfStmt, SExpr, Script, Stmt, TemplatePart, UnaryOp};
use crate::error::ParseError;
use crate::lexer::lex;
use crate::span::{Span, Spanned};
use crate::token::{StrPart, Tok, Token};

/// Deepest recursion of the parser: each block, parenthesis, call, operand of a prefix or
/// right-hand operator and `${…}` interpolation counts one or more levels.
pub const MAX_NESTING: usize = 100;

/// Highest syntax tree accepted (statements and expressions together). The compiler and the
/// evaluator recurse once per level, so chains the parser builds in a loop (`a.b.c…`,
/// `a + b + …`) are bounded as well as nesting.
pub const MAX_HEIGHT: usize = 100;

/// Parses a LAL script into its syntax tree.
pub fn parse(src: &str) -> Result<Script, ParseError> {
    let tokens = lex(src)?;
    let mut parser = Parser::new(tokens);
    let mut stmts = Vec::new();
    loop {
        parser.skip_semis();
        if parser.at(&Tok::Eof) {
            break;
        }
        stmts.push(parser.stmt()?);
    }
    let script = Script { stmts };
    check_height(&script)?;
    Ok(script)
}

/// A node of the tree, for the walk below.
enum Node<'a> {
    Stmt(&'a Spanned<Stmt>),
    Block(&'a Block),
    Expr(&'a SExpr),
}

/// Refuses a tree higher than [`MAX_HEIGHT`], walking it with an explicit stack: the tree may be
/// too deep to recurse.
fn check_height(script: &Script) -> Result<(), ParseError> {
    let mut stack: Vec<(Node<'_>, usize)> =
        script.stmts.iter().map(|s| (Node::Stmt(s), 1)).collect();
    while let Some((node, level)) = stack.pop() {
        let span = match &node {
            Node::Stmt(s) => s.span,
            Node::Block(b) => b.span,
            Node::Expr(e) => e.span,
        };
        if level > MAX_HEIGHT {
            return Err(ParseError::new(
                "LAL205",
                span,
                format!("the script nests deeper than {MAX_HEIGHT} levels"),
            ));
        }
        let below = level + 1;
        match node {
            Node::Stmt(s) => match &s.node {
                Stmt::If(i) => {
                    for (cond, body) in &i.branches {
                        stack.push((Node::Expr(cond), below));
                        stack.push((Node::Block(body), below));
                    }
                    if let Some(o) = &i.otherwise {
                        stack.push((Node::Block(o), below));
                    }
                }
                Stmt::Section { args, body, .. } => {
                    stack.extend(args.iter().map(|a| (Node::Expr(arg_value(a)), below)));
                    stack.push((Node::Block(body), below));
                }
                Stmt::Command { args, .. } => {
                    stack.extend(args.iter().map(|a| (Node::Expr(arg_value(a)), below)));
                }
            },
            Node::Block(b) => stack.extend(b.stmts.iter().map(|s| (Node::Stmt(s), below))),
            Node::Expr(e) => match &e.node {
                Expr::Null
                | Expr::Bool(_)
                | Expr::Int(_)
                | Expr::Float(_)
                | Expr::Str(_)
                | Expr::Ident(_) => {}
                Expr::Template(parts) => {
                    for part in parts {
                        if let TemplatePart::Expr(x) = part {
                            stack.push((Node::Expr(x), below));
                        }
                    }
                }
                Expr::Call { args, .. } => {
                    stack.extend(args.iter().map(|a| (Node::Expr(a), below)));
                }
                Expr::Method { target, args, .. } => {
                    stack.push((Node::Expr(target), below));
                    stack.extend(args.iter().map(|a| (Node::Expr(a), below)));
                }
                Expr::Property { target, .. }
                | Expr::Unary { expr: target, .. }
                | Expr::Cast { expr: target, .. } => stack.push((Node::Expr(target), below)),
                Expr::Index {
                    target: lhs,
                    index: rhs,
                }
                | Expr::Binary { lhs, rhs, .. }
                | Expr::Elvis { lhs, rhs } => {
                    stack.push((Node::Expr(lhs), below));
                    stack.push((Node::Expr(rhs), below));
                }
                Expr::Ternary {
                    cond,
                    then,
                    otherwise,
                } => {
                    stack.push((Node::Expr(cond), below));
                    stack.push((Node::Expr(then), below));
                    stack.push((Node::Expr(otherwise), below));
                }
            },
        }
    }
    Ok(())
}

fn arg_value(a: &Arg) -> &SExpr {
    match a {
        Arg::Positional(v) | Arg::Named { value: v, .. } => v,
    }
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    /// Depth of open `(`/`[`: inside them line breaks do not end an expression.
    nest: usize,
    /// Open guarded calls (`block`, `expr`), against [`MAX_NESTING`].
    depth: usize,
}

const BP_TERNARY: u8 = 1;
const BP_OR: u8 = 2;
const BP_AND: u8 = 3;
const BP_EQ: u8 = 4;
const BP_REL: u8 = 5;
const BP_ADD: u8 = 6;
const BP_MUL: u8 = 7;
const BP_PREFIX: u8 = 8;

impl Parser {
    fn new(tokens: Vec<Token>) -> Self {
        Parser {
            tokens,
            pos: 0,
            nest: 0,
            depth: 0,
        }
    }

    fn peek(&self) -> &Token {
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn peek_at(&self, n: usize) -> &Token {
        &self.tokens[(self.pos + n).min(self.tokens.len() - 1)]
    }

    fn at(&self, tok: &Tok) -> bool {
        &self.peek().tok == tok
    }

    fn at_ident(&self, name: &str) -> bool {
        matches!(&self.peek().tok, Tok::Ident(n) if n == name)
    }

    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        t
    }

    fn prev_span(&self) -> Span {
        self.tokens[self.pos.saturating_sub(1)].span
    }

    fn unexpected(&self, expected: &str) -> ParseError {
        let t = self.peek();
        ParseError::new(
            "LAL201",
            t.span,
            format!("expected {expected}, found {}", t.tok.describe()),
        )
    }

    fn expect(&mut self, tok: Tok, expected: &str) -> Result<Token, ParseError> {
        if self.at(&tok) {
            Ok(self.next())
        } else {
            Err(self.unexpected(expected))
        }
    }

    fn skip_semis(&mut self) {
        while self.at(&Tok::Semi) {
            self.next();
        }
    }

    /// Refuses to go past [`MAX_NESTING`]; every recursive path of the parser passes here.
    fn enter(&mut self) -> Result<(), ParseError> {
        if self.depth >= MAX_NESTING {
            return Err(ParseError::new(
                "LAL205",
                self.peek().span,
                format!("the script nests deeper than {MAX_NESTING} levels"),
            ));
        }
        self.depth += 1;
        Ok(())
    }

    fn block(&mut self) -> Result<Block, ParseError> {
        self.enter()?;
        let b = self.block_inner();
        self.depth -= 1;
        b
    }

    fn block_inner(&mut self) -> Result<Block, ParseError> {
        let open = self.expect(Tok::LBrace, "`{`")?;
        let saved = std::mem::replace(&mut self.nest, 0);
        let mut stmts = Vec::new();
        loop {
            self.skip_semis();
            if self.at(&Tok::RBrace) {
                break;
            }
            if self.at(&Tok::Eof) {
                return Err(ParseError::new(
                    "LAL202",
                    open.span,
                    "unclosed `{`: missing `}`",
                ));
            }
            stmts.push(self.stmt()?);
        }
        let close = self.next();
        self.nest = saved;
        Ok(Block {
            stmts,
            span: open.span.to(close.span),
        })
    }

    fn stmt(&mut self) -> Result<Spanned<Stmt>, ParseError> {
        let start = self.peek().span;
        let name = match &self.peek().tok {
            Tok::Ident(n) => n.clone(),
            _ => return Err(self.unexpected("a statement")),
        };
        if name == "if" {
            let stmt = self.if_stmt()?;
            return Ok(Spanned::new(stmt, start.to(self.prev_span())));
        }
        if name == "else" {
            return Err(ParseError::new(
                "LAL203",
                start,
                "`else` without a preceding `if` block",
            ));
        }
        self.next();
        let name = Spanned::new(name, start);
        let mut args = Vec::new();
        let next = self.peek();
        if next.tok == Tok::LParen && !next.newline_before {
            self.next();
            self.nest += 1;
            if !self.at(&Tok::RParen) {
                loop {
                    args.push(self.arg()?);
                    if self.at(&Tok::Comma) {
                        self.next();
                        continue;
                    }
                    break;
                }
            }
            self.expect(Tok::RParen, "`,` or `)`")?;
            self.nest -= 1;
        } else if self.starts_argument() {
            loop {
                args.push(self.arg()?);
                if self.at(&Tok::Comma) {
                    self.next();
                    continue;
                }
                break;
            }
        }
        if self.at(&Tok::LBrace) {
            let body = self.block()?;
            let span = start.to(body.span);
            return Ok(Spanned::new(Stmt::Section { name, args, body }, span));
        }
        self.end_of_statement()?;
        Ok(Spanned::new(
            Stmt::Command { name, args },
            start.to(self.prev_span()),
        ))
    }

    /// Whether the next token begins a command argument on the command's line.
    fn starts_argument(&self) -> bool {
        let t = self.peek();
        !t.newline_before
            && !matches!(
                t.tok,
                Tok::RBrace | Tok::Semi | Tok::Eof | Tok::LBrace | Tok::Comma
            )
    }

    fn end_of_statement(&self) -> Result<(), ParseError> {
        let t = self.peek();
        if t.newline_before || matches!(t.tok, Tok::RBrace | Tok::Semi | Tok::Eof) {
            Ok(())
        } else {
            Err(self.unexpected("end of statement"))
        }
    }

    fn arg(&mut self) -> Result<Arg, ParseError> {
        let t = self.peek();
        let key = match &t.tok {
            Tok::Ident(n) => Some(n.clone()),
            Tok::Str(parts) => match parts.as_slice() {
                [StrPart::Lit(s)] => Some(s.clone()),
                _ => None,
            },
            _ => None,
        };
        if let Some(key) = key {
            if self.peek_at(1).tok == Tok::Colon {
                let span = self.next().span;
                self.next();
                let value = self.expr(0)?;
                return Ok(Arg::Named {
                    key: Spanned::new(key, span),
                    value,
                });
            }
        }
        Ok(Arg::Positional(self.expr(0)?))
    }

    fn if_stmt(&mut self) -> Result<Stmt, ParseError> {
        let mut branches = Vec::new();
        let mut otherwise = None;
        self.next(); // `if`
        loop {
            self.expect(Tok::LParen, "`(` after `if`")?;
            self.nest += 1;
            let cond = self.expr(0)?;
            self.expect(Tok::RParen, "`)` closing the condition")?;
            self.nest -= 1;
            let body = self.block()?;
            branches.push((cond, body));
            if !self.at_ident("else") {
                break;
            }
            self.next();
            if self.at_ident("if") {
                self.next();
                continue;
            }
            otherwise = Some(self.block()?);
            break;
        }
        Ok(Stmt::If(IfStmt {
            branches,
            otherwise,
        }))
    }

    /// Whether an operator token may continue the current expression.
    fn continues(&self) -> bool {
        let t = self.peek();
        !t.newline_before || self.nest > 0 || matches!(t.tok, Tok::Dot | Tok::SafeDot)
    }

    fn expr(&mut self, min_bp: u8) -> Result<SExpr, ParseError> {
        self.enter()?;
        let e = self.expr_inner(min_bp);
        self.depth -= 1;
        e
    }

    fn expr_inner(&mut self, min_bp: u8) -> Result<SExpr, ParseError> {
        let mut lhs = self.prefix()?;
        let mut links = 0;
        loop {
            // A chain too long for the height check is refused before it grows further.
            links += 1;
            if links > MAX_HEIGHT {
                return Err(self.too_long_chain());
            }
            if !self.continues() {
                break;
            }
            let t = self.peek().clone();
            let (op, bp) = match &t.tok {
                Tok::OrOr => (Some(BinaryOp::Or), BP_OR),
                Tok::AndAnd => (Some(BinaryOp::And), BP_AND),
                Tok::EqEq => (Some(BinaryOp::Eq), BP_EQ),
                Tok::NotEq => (Some(BinaryOp::Ne), BP_EQ),
                Tok::Lt => (Some(BinaryOp::Lt), BP_REL),
                Tok::Le => (Some(BinaryOp::Le), BP_REL),
                Tok::Gt => (Some(BinaryOp::Gt), BP_REL),
                Tok::Ge => (Some(BinaryOp::Ge), BP_REL),
                Tok::Plus => (Some(BinaryOp::Add), BP_ADD),
                Tok::Minus => (Some(BinaryOp::Sub), BP_ADD),
                Tok::Star => (Some(BinaryOp::Mul), BP_MUL),
                Tok::Slash => (Some(BinaryOp::Div), BP_MUL),
                Tok::Percent => (Some(BinaryOp::Rem), BP_MUL),
                Tok::Ident(n) if n == "as" => (None, BP_REL),
                Tok::Question | Tok::Elvis => (None, BP_TERNARY),
                _ => break,
            };
            if bp < min_bp {
                break;
            }
            self.next();
            if let Some(op) = op {
                let rhs = self.expr(bp + 1)?;
                let span = lhs.span.to(rhs.span);
                lhs = Spanned::new(
                    Expr::Binary {
                        op,
                        lhs: Box::new(lhs),
                        rhs: Box::new(rhs),
                    },
                    span,
                );
                continue;
            }
            match t.tok {
                Tok::Ident(_) => {
                    let ty = match &self.peek().tok {
                        Tok::Ident(n) => Spanned::new(n.clone(), self.peek().span),
                        _ => return Err(self.unexpected("a type name after `as`")),
                    };
                    self.next();
                    let span = lhs.span.to(ty.span);
                    lhs = Spanned::new(
                        Expr::Cast {
                            expr: Box::new(lhs),
                            ty,
                        },
                        span,
                    );
                }
                Tok::Elvis => {
                    let rhs = self.expr(BP_TERNARY)?;
                    let span = lhs.span.to(rhs.span);
                    lhs = Spanned::new(
                        Expr::Elvis {
                            lhs: Box::new(lhs),
                            rhs: Box::new(rhs),
                        },
                        span,
                    );
                }
                _ => {
                    self.nest += 1;
                    let then = self.expr(0)?;
                    self.expect(Tok::Colon, "`:` of the conditional expression")?;
                    self.nest -= 1;
                    let otherwise = self.expr(BP_TERNARY)?;
                    let span = lhs.span.to(otherwise.span);
                    lhs = Spanned::new(
                        Expr::Ternary {
                            cond: Box::new(lhs),
                            then: Box::new(then),
                            otherwise: Box::new(otherwise),
                        },
                        span,
                    );
                }
            }
        }
        Ok(lhs)
    }

    fn prefix(&mut self) -> Result<SExpr, ParseError> {
        let t = self.peek().clone();
        let op = match t.tok {
            Tok::Not => Some(UnaryOp::Not),
            Tok::Minus => Some(UnaryOp::Neg),
            _ => None,
        };
        if let Some(op) = op {
            self.next();
            let operand = self.expr(BP_PREFIX)?;
            let span = t.span.to(operand.span);
            return Ok(Spanned::new(
                Expr::Unary {
                    op,
                    expr: Box::new(operand),
                },
                span,
            ));
        }
        let primary = self.primary()?;
        self.postfix(primary)
    }

    fn primary(&mut self) -> Result<SExpr, ParseError> {
        let t = self.next();
        let node = match t.tok {
            Tok::Int(n) => Expr::Int(n),
            Tok::Float(f) => Expr::Float(f),
            Tok::Str(parts) => string_expr(parts, self.depth)?,
            Tok::LParen => {
                self.nest += 1;
                let inner = self.expr(0)?;
                let close = self.expect(Tok::RParen, "`)`")?;
                self.nest -= 1;
                return Ok(Spanned::new(inner.node, t.span.to(close.span)));
            }
            Tok::Ident(name) => match name.as_str() {
                "null" => Expr::Null,
                "true" => Expr::Bool(true),
                "false" => Expr::Bool(false),
                _ => {
                    let next = self.peek();
                    if next.tok == Tok::LParen && !next.newline_before {
                        let args = self.call_args()?;
                        return Ok(Spanned::new(
                            Expr::Call { name, args },
                            t.span.to(self.prev_span()),
                        ));
                    }
                    Expr::Ident(name)
                }
            },
            _ => {
                self.pos -= 1;
                return Err(self.unexpected("a value"));
            }
        };
        Ok(Spanned::new(node, t.span))
    }

    fn call_args(&mut self) -> Result<Vec<SExpr>, ParseError> {
        self.expect(Tok::LParen, "`(`")?;
        self.nest += 1;
        let mut args = Vec::new();
        if !self.at(&Tok::RParen) {
            loop {
                args.push(self.expr(0)?);
                if self.at(&Tok::Comma) {
                    self.next();
                    continue;
                }
                break;
            }
        }
        self.expect(Tok::RParen, "`,` or `)`")?;
        self.nest -= 1;
        Ok(args)
    }

    fn too_long_chain(&self) -> ParseError {
        ParseError::new(
            "LAL205",
            self.peek().span,
            format!("the script nests deeper than {MAX_HEIGHT} levels"),
        )
    }

    fn postfix(&mut self, mut lhs: SExpr) -> Result<SExpr, ParseError> {
        let mut links = 0;
        loop {
            links += 1;
            if links > MAX_HEIGHT {
                return Err(self.too_long_chain());
            }
            if !self.continues() {
                return Ok(lhs);
            }
            match self.peek().tok {
                Tok::Dot | Tok::SafeDot => {
                    let safe = self.next().tok == Tok::SafeDot;
                    let name_tok = self.next();
                    let Tok::Ident(name) = name_tok.tok else {
                        self.pos -= 1;
                        return Err(self.unexpected("a property or method name"));
                    };
                    let next = self.peek();
                    if next.tok == Tok::LParen && !next.newline_before {
                        let args = self.call_args()?;
                        let span = lhs.span.to(self.prev_span());
                        lhs = Spanned::new(
                            Expr::Method {
                                target: Box::new(lhs),
                                name,
                                args,
                                safe,
                            },
                            span,
                        );
                    } else {
                        let span = lhs.span.to(name_tok.span);
                        lhs = Spanned::new(
                            Expr::Property {
                                target: Box::new(lhs),
                                name,
                                safe,
                            },
                            span,
                        );
                    }
                }
                Tok::LBracket if !self.peek().newline_before => {
                    self.next();
                    self.nest += 1;
                    let index = self.expr(0)?;
                    let close = self.expect(Tok::RBracket, "`]`")?;
                    self.nest -= 1;
                    let span = lhs.span.to(close.span);
                    lhs = Spanned::new(
                        Expr::Index {
                            target: Box::new(lhs),
                            index: Box::new(index),
                        },
                        span,
                    );
                }
                _ => return Ok(lhs),
            }
        }
    }
}

/// A string token becomes a literal, or a template whose `${…}` parts are parsed here.
fn string_expr(parts: Vec<StrPart>, depth: usize) -> Result<Expr, ParseError> {
    if let [StrPart::Lit(s)] = parts.as_slice() {
        return Ok(Expr::Str(s.clone()));
    }
    let mut out = Vec::new();
    for part in parts {
        match part {
            StrPart::Lit(s) => out.push(TemplatePart::Lit(s)),
            StrPart::Expr(tokens) => {
                let first = tokens[0].span;
                let mut inner = Parser::new(tokens);
                inner.nest = 1;
                inner.depth = depth;
                if inner.at(&Tok::Eof) {
                    return Err(ParseError::new(
                        "LAL204",
                        first,
                        "empty `${}` interpolation",
                    ));
                }
                let e = inner.expr(0)?;
                if !inner.at(&Tok::Eof) {
                    return Err(inner.unexpected("`}` closing the interpolation"));
                }
                out.push(TemplatePart::Expr(e));
            }
        }
    }
    Ok(Expr::Template(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_binds_tighter_than_comparison() {
        let s = parse("x (tag(\"a\") as Integer < 400)").unwrap();
        let Stmt::Command { args, .. } = &s.stmts[0].node else {
            panic!("not a command")
        };
        let Arg::Positional(e) = &args[0] else {
            panic!("not positional")
        };
        let Expr::Binary { op, lhs, .. } = &e.node else {
            panic!("not binary: {e:?}")
        };
        assert_eq!(*op, BinaryOp::Lt);
        assert!(matches!(lhs.node, Expr::Cast { .. }));
    }

    #[test]
    fn line_breaks_end_commands_but_not_parenthesised_conditions() {
        let s = parse("f {\n layer \"A\"\n instance x\n if (a == 1\n && b == 2) { abort {} }\n}")
            .unwrap();
        let Stmt::Section { body, .. } = &s.stmts[0].node else {
            panic!("not a section")
        };
        assert_eq!(body.stmts.len(), 3);
    }

    #[test]
    fn named_arguments() {
        let s = parse("labels a: x, 'b.c': \"v\"\ntag k: 1").unwrap();
        assert_eq!(s.stmts.len(), 2);
        let Stmt::Command { args, .. } = &s.stmts[0].node else {
            panic!("not a command")
        };
        assert!(matches!(&args[1], Arg::Named { key, .. } if key.node == "b.c"));
    }

    #[test]
    fn errors_carry_positions() {
        let err = parse("filter {\n  if (a == ) {}\n}").unwrap_err();
        assert_eq!((err.span.line, err.span.col), (2, 12));
        let err = parse("filter {\n  json {\n").unwrap_err();
        assert_eq!(err.code, "LAL202");
        assert_eq!((err.span.line, err.span.col), (2, 8));
    }
}
