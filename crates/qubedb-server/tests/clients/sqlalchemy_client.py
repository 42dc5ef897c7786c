"""SQLAlchemy 2 (over psycopg 3) against `qubedb serve`: the ORM creates tables, inserts, queries,
updates and deletes; the inspector and `MetaData.reflect` read the tables back from the system catalogs
(columns, primary key, foreign keys, unique constraints, indexes). Run by the server tests with the port
as the argument; prints `ok` when all hold."""

import decimal
import sys

from sqlalchemy import ForeignKey, MetaData, Numeric, String, create_engine, inspect, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

port = int(sys.argv[1])
engine = create_engine(f"postgresql+psycopg://qubedb@127.0.0.1:{port}/qubedb")


class Base(DeclarativeBase):
    pass


class Author(Base):
    __tablename__ = "authors"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(50), unique=True)
    books: Mapped[list["Book"]] = relationship(back_populates="author", cascade="all")


class Book(Base):
    __tablename__ = "books"
    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200), index=True)
    price: Mapped[decimal.Decimal | None] = mapped_column(Numeric(8, 2))
    author_id: Mapped[int] = mapped_column(ForeignKey("authors.id"))
    author: Mapped[Author] = relationship(back_populates="books")


Base.metadata.drop_all(engine)
Base.metadata.create_all(engine)

with Session(engine) as session:
    ann = Author(name="Ann")
    session.add_all([ann, Book(title="One", price=decimal.Decimal("10.50"), author=ann), Book(title="Two", author=ann)])
    session.commit()
    titles = session.scalars(select(Book.title).where(Book.author_id == ann.id).order_by(Book.title)).all()
    assert titles == ["One", "Two"], titles
    one = session.scalars(select(Book).where(Book.title == "One")).one()
    one.price = decimal.Decimal("12")
    session.commit()
    assert session.scalar(select(Book.price).where(Book.title == "One")) == decimal.Decimal("12.00")
    session.delete(session.scalars(select(Book).where(Book.title == "Two")).one())
    session.commit()
    assert session.scalars(select(Book.title)).all() == ["One"]
    # Identity map and relationship loading.
    assert [book.title for book in session.get(Author, ann.id).books] == ["One"]

inspector = inspect(engine)
assert sorted(inspector.get_table_names()) == ["authors", "books"]
columns = [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns("books")]
assert columns == [
    ("id", "INTEGER", False),
    ("title", "VARCHAR(200)", False),
    ("price", "NUMERIC(8, 2)", True),
    ("author_id", "INTEGER", False),
], columns
assert inspector.get_columns("books")[0]["autoincrement"] is True
assert inspector.get_pk_constraint("books")["constrained_columns"] == ["id"]
foreign_keys = inspector.get_foreign_keys("books")
assert [(k["constrained_columns"], k["referred_table"], k["referred_columns"]) for k in foreign_keys] == [
    (["author_id"], "authors", ["id"])
], foreign_keys
uniques = inspector.get_unique_constraints("authors")
assert [(u["name"], u["column_names"]) for u in uniques] == [("authors_name_key", ["name"])], uniques
indexes = inspector.get_indexes("books")
assert [(i["name"], i["column_names"], i["unique"]) for i in indexes] == [("ix_books_title", ["title"], False)], indexes

reflected = MetaData()
reflected.reflect(engine)
assert sorted(reflected.tables) == ["authors", "books"]
books = reflected.tables["books"]
assert [column.name for column in books.primary_key] == ["id"]
assert {key.target_fullname for key in books.foreign_keys} == {"authors.id"}
with engine.connect() as connection:
    rows = connection.execute(select(books.c.title, books.c.price)).all()
    assert rows == [("One", decimal.Decimal("12.00"))], rows

print("ok")
