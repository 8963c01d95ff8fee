"""Parts built from the book: the RNN/GRU/LSTM layer classes (where ``engine=`` picks what runs),
embedding, linear, the language model, heads, attention, regression, stepping."""
