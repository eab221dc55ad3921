"""Finds SQL statements built from data: every psycopg execute/executemany/copy call whose
statement is not a constant of the source (literals, module constants, locals only ever
assigned constants, and psycopg.sql compositions, whose identifiers psycopg quotes).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Finding", "audit_file", "audit_source"]

SQL_CALLS = frozenset({"execute", "executemany", "copy"})
# psycopg.sql objects quote (Identifier, Literal) or stand for (Placeholder) what they hold.
QUOTING = frozenset({"Identifier", "Literal", "Placeholder"})
PURE_BUILTINS = frozenset({"len", "str", "int", "tuple", "list", "sorted", "range", "repr"})


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    source: str


def _const(node: ast.AST | None, names: frozenset[str]) -> bool:
    """Whether `node` is made of constants of the source only."""
    match node:
        case None | ast.Constant():
            return True
        case ast.Name(id=name):
            return name in names
        case ast.JoinedStr(values=values):
            return all(_const(v, names) for v in values)
        case ast.FormattedValue(value=value, format_spec=spec):
            return _const(value, names) and _const(spec, names)
        case ast.BinOp(left=left, right=right):
            return _const(left, names) and _const(right, names)
        case ast.Tuple(elts=elts) | ast.List(elts=elts) | ast.Set(elts=elts):
            return all(_const(e, names) for e in elts)
        case ast.Subscript(value=value, slice=index):
            return _const(value, names) and _const(index, names)
        case ast.Slice(lower=lower, upper=upper, step=step):
            return all(_const(p, names) for p in (lower, upper, step))
        case ast.IfExp(body=body, orelse=orelse):
            return _const(body, names) and _const(orelse, names)
        case ast.GeneratorExp(elt=elt, generators=gens) | ast.ListComp(elt=elt, generators=gens):
            inner = set(names)
            for gen in gens:
                if not _const(gen.iter, frozenset(inner)):
                    return False
                inner |= {n.id for n in ast.walk(gen.target) if isinstance(n, ast.Name)}
            return _const(elt, frozenset(inner))
        case ast.Call(func=func, args=args, keywords=keywords):
            parts = [*args, *(k.value for k in keywords)]
            if isinstance(func, ast.Attribute) and func.attr in QUOTING:
                return True  # sql.Identifier(anything): quoted by psycopg
            if isinstance(func, ast.Name) and func.id not in PURE_BUILTINS:
                return False
            if isinstance(func, ast.Attribute) and not _const(func.value, names):
                return func.attr == "SQL" and all(_const(p, names) for p in parts)
            return all(_const(p, names) for p in parts)
    return False


def _assignments(body: list[ast.stmt]) -> Iterator[tuple[str, ast.AST | None]]:
    """(name, value) for every binding of a name in this scope (not in nested functions);
    a value of None means: bound to something unknown (a loop over data, `with ... as`)."""
    stack: list[ast.AST] = list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            if not isinstance(node, ast.Lambda):
                yield node.name, None
            continue
        if isinstance(node, ast.Assign):
            for target in node.targets:
                yield from _bind(target, node.value)
        elif isinstance(node, ast.AnnAssign | ast.AugAssign):
            yield from _bind(node.target, node.value)
        elif isinstance(node, ast.For | ast.AsyncFor):
            # Each item of a literal tuple or list in turn; else an item of the collection,
            # a constant when the collection is one.
            if isinstance(node.iter, ast.Tuple | ast.List):
                for item in node.iter.elts:
                    yield from _bind(node.target, item)
            else:
                for name in ast.walk(node.target):
                    if isinstance(name, ast.Name):
                        yield name.id, node.iter
        elif isinstance(node, ast.withitem) and node.optional_vars is not None:
            yield from _bind(node.optional_vars, None)
        elif isinstance(node, ast.NamedExpr):
            yield from _bind(node.target, node.value)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            yield node.name, None
        elif isinstance(node, ast.Import | ast.ImportFrom):
            for alias in node.names:
                yield (alias.asname or alias.name).split(".")[0], None
        stack.extend(ast.iter_child_nodes(node))


def _bind(target: ast.AST, value: ast.AST | None) -> Iterator[tuple[str, ast.AST | None]]:
    if isinstance(target, ast.Name):
        yield target.id, value
    elif isinstance(target, ast.Tuple | ast.List):
        values = value.elts if isinstance(value, ast.Tuple | ast.List) else None
        for i, element in enumerate(target.elts):
            yield from _bind(element, values[i] if values and len(values) == len(target.elts)
                             else None)
    # attributes and subscripts bind no name


def _constants(body: list[ast.stmt], inherited: frozenset[str],
               params: set[str]) -> frozenset[str]:
    """The names of a scope that only ever hold constants (a fixpoint over its bindings)."""
    bound: dict[str, list[ast.AST | None]] = {}
    for name, value in _assignments(body):
        bound.setdefault(name, []).append(value)
    names = set(inherited) - set(bound) - params
    while True:
        more = {n for n, values in bound.items() if n not in names and n not in params
                and all(v is not None and _const(v, frozenset(names)) for v in values)}
        if not more:
            return frozenset(names)
        names |= more


def _scopes(node: ast.AST, inherited: frozenset[str]) -> Iterator[tuple[ast.AST, frozenset[str]]]:
    """Each function (nested ones too) with the constant names visible in it."""
    for child in ast.walk(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) and child is not node:
            args = child.args
            params = {a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs,
                                      args.vararg, args.kwarg) if a is not None}
            names = _constants(child.body, inherited, params)
            yield child, names


def _calls(scope: ast.AST) -> Iterator[ast.Call]:
    """The calls of one scope, not those of the functions nested in it."""
    stack = list(ast.iter_child_nodes(scope))
    while stack:
        node = stack.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        if isinstance(node, ast.Call):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def audit_source(source: str, path: str = "<string>") -> tuple[int, list[Finding]]:
    """(how many statements were checked, the ones built from data)."""
    tree = ast.parse(source, path)
    module_names = _constants(tree.body, frozenset(), set())
    scopes = [(tree, module_names), *_scopes(tree, module_names)]
    checked, findings = 0, []
    for scope, names in scopes:
        for call in _calls(scope):
            func = call.func
            if not (isinstance(func, ast.Attribute) and func.attr in SQL_CALLS and call.args):
                continue
            checked += 1
            if not _const(call.args[0], names):
                findings.append(Finding(path, call.lineno, ast.unparse(call)[:200]))
    return checked, sorted(findings, key=lambda f: f.line)


def audit_file(path: Path) -> tuple[int, list[Finding]]:
    return audit_source(path.read_text(), str(path))
